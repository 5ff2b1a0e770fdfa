"""FCMAE pretraining of `profound_conv`: masking, patchify, loss on removed patches only, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from taskalign.data.case import Case
from taskalign.pretrain import PRETRAINERS
from taskalign.encoders.convnextv2 import create_profound_conv
from taskalign.optim import cosine_schedule
from taskalign.pretrain.fcmae import (FCMAE, VolumeBank, patchify, pretrain_fcmae, random_masking, unpatchify,
                                      upsample_mask)

QUICK = (16, 48, 48)  # patch grid (2, 3, 3) at micro


@pytest.fixture
def model() -> FCMAE:
    torch.manual_seed(0)
    return FCMAE(create_profound_conv("micro"), decoder_dim=32).eval()


def _replace_patches(imgs: torch.Tensor, model: FCMAE, which: torch.Tensor) -> torch.Tensor:
    """Copy of imgs (B, C, D, H, W) with new random content in the patches where which (B, L) is 1."""
    patches = patchify(imgs, model.patch_size)
    patches = torch.where(which[..., None].bool(), torch.randn_like(patches) * 5, patches)
    return unpatchify(patches, model.patch_size, model.grid(imgs.shape[2:]), imgs.shape[1])


def test_mask_ratio_is_what_was_asked():
    mask = random_masking(5, 100, 0.6, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (5, 100) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.sum(dim=1).tolist() == [60.0] * 5
    assert not torch.equal(mask[0], mask[1])  # independent per sample
    quick = random_masking(3, math.prod((2, 3, 3)), 0.6)
    assert quick.sum(dim=1).tolist() == [11.0] * 3  # 18 - int(18 * 0.4)


def test_masking_needs_a_kept_and_a_removed_patch():
    with pytest.raises(ValueError, match="kept"):
        random_masking(2, 1, 0.6)


def test_patchify_round_trip_with_any_channel_count():
    x = torch.randn(2, 5, 16, 32, 48)
    patches = patchify(x, (8, 16, 16))
    assert patches.shape == (2, 2 * 2 * 3, 8 * 16 * 16 * 5)
    assert torch.equal(unpatchify(patches, (8, 16, 16), (2, 2, 3), 5), x)
    # patch 1 is grid cell (0, 0, 1), values in (pd, ph, pw, c) order
    assert torch.equal(patches[0, 1], x[0, :, :8, :16, 16:32].permute(1, 2, 3, 0).reshape(-1))


def test_upsample_mask_follows_the_patch_grid():
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # grid (1, 2, 2)
    up = upsample_mask(mask, (1, 2, 2), (2, 3, 3))
    assert up.shape == (1, 1, 2, 6, 6)
    assert up[0, 0, :, :3, :3].eq(1).all() and up[0, 0, :, :3, 3:].eq(0).all() and up[0, 0, :, 3:, 3:].eq(1).all()


def test_loss_counts_removed_patches_only(model):
    imgs = torch.randn(2, 3, *QUICK)
    mask = random_masking(2, 18, 0.6, generator=torch.Generator().manual_seed(1))
    pred = torch.randn(2, 18, model.pred.out_channels)
    loss = model.forward_loss(imgs, pred, mask)
    assert torch.allclose(model.forward_loss(_replace_patches(imgs, model, 1 - mask), pred, mask), loss)
    assert not torch.allclose(model.forward_loss(_replace_patches(imgs, model, mask), pred, mask), loss)


def test_loss_targets_are_normalised_per_patch(model):
    imgs = torch.randn(1, 3, *QUICK)
    mask = torch.ones(1, 18)
    target = patchify(imgs, model.patch_size)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert torch.allclose(model.forward_loss(imgs, target, mask), torch.tensor(0.0), atol=1e-8)
    assert torch.allclose(model.forward_loss(imgs * 7 + 3, target, mask), torch.tensor(0.0), atol=1e-6)


def test_removed_patches_do_not_reach_the_encoder_or_prediction(model):
    imgs = torch.randn(2, 3, *QUICK)
    mask = random_masking(2, 18, 0.6, generator=torch.Generator().manual_seed(2))
    changed = _replace_patches(imgs, model, mask)
    with torch.no_grad():
        latent, latent_changed = model.forward_encoder(imgs, mask), model.forward_encoder(changed, mask)
        pred, pred_changed = model(imgs, mask)[1], model(changed, mask)[1]
    assert torch.equal(latent, latent_changed) and torch.equal(pred, pred_changed)
    removed = upsample_mask(mask, (2, 3, 3), (1, 1, 1)).bool().expand_as(latent)
    assert latent[removed].abs().max() == 0


def test_every_parameter_but_the_pooled_norm_is_trained(model):
    loss, pred, _ = model.train()(torch.randn(2, 3, *QUICK))
    assert pred.shape == (2, 18, 8 * 16 * 16 * 3)
    loss.backward()
    starved = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert starved == ["encoder.norm.weight", "encoder.norm.bias"]  # FCMAE never pools


def test_paper_decoder_layout():
    fcmae = FCMAE(create_profound_conv("paper"), decoder_dim=512)
    shapes = {k: tuple(v.shape) for k, v in fcmae.state_dict().items() if not k.startswith("encoder.")}
    assert shapes["proj.weight"] == (512, 768, 1, 1, 1) and shapes["mask_token"] == (1, 512, 1, 1, 1)
    assert shapes["pred.weight"] == (16 * 16 * 16 * 3, 512, 1, 1, 1)
    assert shapes["decoder.0.grn.gamma"] == (1, 1, 1, 1, 2048)


def test_warmup_cosine_schedule():
    lrs = [cosine_schedule(s, 100, 1e-3, 0.0, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 1e-5


def _structured_cases(n: int, shape=(8, 32, 32), seed: int = 0) -> list[Case]:
    """Volumes with a repeating per-channel pattern (left-right symmetric), random gain/offset, noise."""
    rng = np.random.default_rng(seed)
    d, h, w = np.meshgrid(*[np.arange(k) + 0.5 for k in shape], indexing="ij")
    patterns = [np.cos(2 * np.pi * w / 16) * np.sin(2 * np.pi * h / 16),
                np.cos(2 * np.pi * d / 8) + np.cos(2 * np.pi * w / 8),
                np.sin(2 * np.pi * h / 16) ** 2]
    cases = []
    for i in range(n):
        image = np.stack([rng.uniform(50, 100) * p + rng.uniform(300, 600) for p in patterns])
        image += rng.normal(0, 2, image.shape)
        cases.append(Case(f"syn{i}", image.astype(np.float32), (4.0, 2.5, 2.5)))
    return cases


def test_pretraining_lowers_the_loss_and_trains_the_encoder_in_place():
    torch.manual_seed(123)
    encoder = create_profound_conv("micro")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    seen = []
    state = torch.get_rng_state()
    losses = pretrain_fcmae(encoder, _structured_cases(8), steps=60, batch_size=4, lr=2e-3, seed=0,
                            progress=lambda step, loss: seen.append(step))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    assert len(losses) == 60 and seen == list(range(60)) and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    after = encoder.state_dict()
    assert not torch.equal(before["stages.0.0.dwconv.weight"], after["stages.0.0.dwconv.weight"])
    assert all(p.grad is None for p in encoder.parameters())


def test_pretraining_is_seeded_and_keeps_the_encoder_mode():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = create_profound_conv("micro").eval()
        runs.append(pretrain_fcmae(encoder, _structured_cases(4), steps=3, batch_size=2, lr=1e-3, seed=7))
        assert not encoder.training
    assert runs[0] == runs[1]


def test_cohort_batches_do_not_depend_on_caching():
    encoder, cases = create_profound_conv("micro"), _structured_cases(5)
    cached = VolumeBank(encoder, cases)
    uncached = VolumeBank(encoder, cases, cache_bytes=0)
    assert cached.cache is not None and uncached.cache is None
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        a, b = cached.batch(4, ga), uncached.batch(4, gb)
        assert a.shape == (4, 3, 8, 32, 32) and torch.equal(a, b)


def test_pretraining_stops_on_a_non_finite_loss():
    cases = _structured_cases(2)
    cases[0].image[0, 0, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="NaN/Inf"):
        pretrain_fcmae(create_profound_conv("micro"), cases[:1], steps=1, batch_size=1, lr=1e-3, seed=0)


def test_pretraining_rejects_unusable_cohorts():
    encoder = create_profound_conv("micro")
    with pytest.raises(ValueError, match="empty"):
        pretrain_fcmae(encoder, [], steps=1, batch_size=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="one volume size"):
        pretrain_fcmae(encoder, _structured_cases(1) + _structured_cases(1, (16, 48, 48)), 1, 1, 1e-3, 0)
    with pytest.raises(ValueError, match="total stride"):
        pretrain_fcmae(encoder, _structured_cases(1, (12, 32, 32)), 1, 1, 1e-3, 0)


def test_registered_as_the_profound_conv_objective():
    assert PRETRAINERS.get("profound_conv") is pretrain_fcmae
