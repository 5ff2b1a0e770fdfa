"""`profound_vit` (3D MAE ViT-Base): published layout, fixed sin-cos positions, feature contract,
MAE pretraining and the published MAE file format."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from taskalign import create_encoder
from taskalign.data.case import Case
from taskalign.pretrain import PRETRAINERS
from taskalign.encoders.mae_vit3d import MAEViT3D, sincos_3d
from taskalign.encoders.weights import CheckpointNote
from taskalign.encoders.weights.inspection import inspect_checkpoint
from taskalign.pretrain.fcmae import patchify, unpatchify
from taskalign.pretrain.mae import MAE3D, pretrain_mae


def _expected_paper_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"cls_token": (1, 1, 768), "pos_embed": (1, 257, 768), "patch_embed.proj.weight": (768, 3, 16, 32, 32),
              "patch_embed.proj.bias": (768,), "norm.weight": (768,), "norm.bias": (768,)}
    block = {"norm1.weight": (768,), "norm1.bias": (768,), "attn.qkv.weight": (2304, 768), "attn.qkv.bias": (2304,),
             "attn.proj.weight": (768, 768), "attn.proj.bias": (768,), "norm2.weight": (768,), "norm2.bias": (768,),
             "mlp.fc1.weight": (3072, 768), "mlp.fc1.bias": (3072,), "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,)}
    for i in range(12):
        shapes |= {f"blocks.{i}.{k}": v for k, v in block.items()}
    return shapes


def test_paper_layout_key_for_key():
    with torch.device("meta"):
        enc = create_encoder("profound_vit", size="paper")
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == _expected_paper_shapes()
    assert (enc.family, enc.spatial_dims, enc.pooled_dim) == ("profound_vit", 3, 768)
    assert [m.stride for m in enc.feature_info] == [(16, 32, 32)] * 4
    assert "pos_embed" not in dict(enc.named_parameters())  # fixed, not trained


def test_paper_forward_at_the_published_input():
    torch.manual_seed(0)
    enc = create_encoder("profound_vit", size="paper").eval()
    with torch.no_grad():
        out = enc(torch.randn(1, 3, 64, 256, 256))
    assert out["pooled"].shape == (1, 768) and [tuple(m.shape) for m in out["maps"]] == [(1, 768, 4, 8, 8)] * 4


def test_sincos_positions_are_the_formula():
    pos = sincos_3d(12, (2, 3, 4))  # 4 dims per axis: sin, sin, cos, cos
    assert pos.shape == (1 + 24, 12) and torch.equal(pos[0], torch.zeros(12))
    d, h, w = 1, 2, 3
    row = pos[1 + (d * 3 + h) * 4 + w]
    omega = torch.tensor([1.0, 0.01])  # 10000^(-k/2), k = 0, 1
    for axis, p in enumerate((d, h, w)):
        expected = torch.cat([torch.sin(p * omega), torch.cos(p * omega)])
        torch.testing.assert_close(row[4 * axis : 4 * axis + 4], expected)
    assert len({tuple(r.tolist()) for r in pos[1:]}) == 24  # every patch position differs


def test_micro_contract_on_the_study_volumes_and_gradients():
    torch.manual_seed(0)
    enc = create_encoder("profound_vit", size="micro")
    for shape in ((8, 32, 32), (16, 48, 48)):  # smoke and quick (stored grid: recomputed vs stored positions)
        out = enc(torch.randn(2, 3, *shape))
        grid = (shape[0] // 4, shape[1] // 8, shape[2] // 8)
        assert out["pooled"].shape == (2, 96) and all(m.shape == (2, 96, *grid) for m in out["maps"])
    (out["pooled"].sum() + sum(m.sum() for m in out["maps"])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    with pytest.raises(ValueError, match="multiple of the patch size"):
        enc(torch.randn(1, 3, 6, 32, 32))


def _structured_cases(n: int, shape=(8, 32, 32)) -> list[Case]:
    rng, cases = np.random.default_rng(0), []
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    for i in range(n):
        blob = np.exp(-((zz - rng.uniform(-.5, .5)) ** 2 + (yy - rng.uniform(-.5, .5)) ** 2 + (xx - rng.uniform(-.5, .5)) ** 2) / 0.2)
        image = np.stack([100 + 200 * blob, 50 + 80 * blob[::-1], 1500 - 700 * blob]) + rng.normal(0, 2, (3, *shape))
        cases.append(Case(f"syn{i}", image.astype(np.float32), (4.0, 2.5, 2.5)))
    return cases


def test_mae_loss_counts_removed_patches_only():
    torch.manual_seed(0)
    model = MAE3D(create_encoder("profound_vit", size="micro"), 96, 1, 3).eval()
    imgs = torch.randn(2, 3, 8, 32, 32)
    loss, pred, mask = model(imgs, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 32, 4 * 8 * 8 * 3) and mask.sum(dim=1).tolist() == [24.0, 24.0]  # ratio 0.75 of 32
    # the removed patches' content must not reach the prediction
    patches = patchify(imgs, model.patch_size)
    patches = torch.where(mask[..., None].bool(), torch.randn_like(patches) * 5, patches)
    other = unpatchify(patches, model.patch_size, (2, 4, 4), 3)
    _, pred_other, _ = model(other, mask=mask)
    torch.testing.assert_close(pred, pred_other)


def test_mae_pretraining_lowers_the_loss_and_is_registered():
    assert PRETRAINERS.get("profound_vit") is pretrain_mae
    torch.manual_seed(1)
    encoder = create_encoder("profound_vit", size="micro")
    before = encoder.blocks[0].attn.qkv.weight.detach().clone()
    losses = pretrain_mae(encoder, _structured_cases(6), steps=40, batch_size=4, lr=2e-3, seed=0)
    assert len(losses) == 40 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    assert not torch.equal(before, encoder.blocks[0].attn.qkv.weight)


def test_published_mae_file_round_trip(tmp_path):
    torch.manual_seed(2)
    original = create_encoder("profound_vit", size="micro").eval()
    mae = MAE3D(original, 96, 1, 3)
    state = {k.removeprefix("encoder."): v for k, v in mae.state_dict().items()}  # MAE files: no prefix
    assert {"mask_token", "decoder_embed.weight", "decoder_pred.bias", "decoder_pos_embed"} <= set(state)
    torch.save({"model": state, "epoch": 1599}, tmp_path / "mae_pretrain.pth")
    info = inspect_checkpoint(tmp_path / "mae_pretrain.pth")
    assert (info["encoder"], info["format"], info["size"], info["loadable"]) == ("profound_vit", "profound-mae", "micro", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = create_encoder("profound_vit", size="micro", weights=tmp_path / "mae_pretrain.pth").eval()
    assert any("MAE decoder" in str(w.message) for w in caught if issubclass(w.category, CheckpointNote))
    assert isinstance(loaded, MAEViT3D)
    x = torch.randn(1, 3, 16, 48, 48)
    with torch.no_grad():
        a, b = original(x), loaded(x)
    assert torch.equal(a["pooled"], b["pooled"]) and all(torch.equal(p, q) for p, q in zip(a["maps"], b["maps"]))


def test_the_study_heads_build_from_its_feature_info():
    from taskalign.heads import build_head
    from taskalign.models import TaskModel

    enc = create_encoder("profound_vit", size="micro")
    x = torch.randn(2, 3, 8, 32, 32)
    for kind, out_channels, shape in (("segmentation", 2, (2, 2, 8, 32, 32)), ("image", 1, (2, 1, 8, 32, 32)),
                                      ("classification", 1, (2, 1))):
        assert TaskModel(enc, build_head(kind, enc, 3, out_channels))(x).shape == shape
