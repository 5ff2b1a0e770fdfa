"""3D ConvNeXt-V2 (`profound_conv`): published layout, stage shapes, gradients, preprocessing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from taskalign.encoders.base import create_encoder
from taskalign.encoders.convnextv2 import GRN, ConvNeXtV2, create_profound_conv

PAPER_DIMS, PAPER_DEPTHS = (96, 192, 384, 768), (3, 3, 9, 3)
STUDY_VOLUMES = [(8, 32, 32), (16, 48, 48)]  # smoke and quick presets


@pytest.fixture(scope="module")
def paper() -> ConvNeXtV2:
    torch.manual_seed(0)
    return create_profound_conv("paper").eval()


def _expected_paper_shapes() -> dict[str, tuple[int, ...]]:
    """Every dense key of the published model, derived from the architecture description."""
    d, shapes = PAPER_DIMS, {}
    shapes |= {"downsample_layers.0.0.weight": (96, 3, 4, 4, 4), "downsample_layers.0.0.bias": (96,),
               "downsample_layers.0.1.weight": (96,), "downsample_layers.0.1.bias": (96,)}
    for i, k in zip(range(1, 4), (2, 2, 1)):
        shapes |= {f"downsample_layers.{i}.0.weight": (d[i - 1],), f"downsample_layers.{i}.0.bias": (d[i - 1],),
                   f"downsample_layers.{i}.1.weight": (d[i], d[i - 1], k, k, k), f"downsample_layers.{i}.1.bias": (d[i],)}
    for s, (dim, depth) in enumerate(zip(d, PAPER_DEPTHS)):
        for b in range(depth):
            p = f"stages.{s}.{b}."
            shapes |= {p + "dwconv.weight": (dim, 1, 7, 7, 7), p + "dwconv.bias": (dim,),
                       p + "norm.weight": (dim,), p + "norm.bias": (dim,),
                       p + "pwconv1.weight": (4 * dim, dim), p + "pwconv1.bias": (4 * dim,),
                       p + "grn.gamma": (1, 1, 1, 1, 4 * dim), p + "grn.beta": (1, 1, 1, 1, 4 * dim),
                       p + "pwconv2.weight": (dim, 4 * dim), p + "pwconv2.bias": (dim,)}
    return shapes | {"norm.weight": (768,), "norm.bias": (768,)}


def test_paper_state_dict_matches_the_published_dense_layout(paper):
    got = {k: tuple(v.shape) for k, v in paper.state_dict().items()}
    assert got == _expected_paper_shapes()


def test_paper_parameter_count(paper):
    count = sum(p.numel() for p in paper.parameters())
    assert count == sum(int(np.prod(s)) for s in _expected_paper_shapes().values())
    assert count == 29_311_680  # 3D ConvNeXt-V2-Tiny without a head


def test_paper_contract(paper):
    assert (paper.family, paper.spatial_dims, paper.pooled_dim) == ("profound_conv", 3, 768)
    assert [m.channels for m in paper.feature_info] == list(PAPER_DIMS)
    assert [m.stride for m in paper.feature_info] == [(4, 4, 4), (8, 8, 8), (16, 16, 16), (16, 16, 16)]


def test_paper_forward_on_a_small_input(paper):
    with torch.no_grad():
        out = paper.forward_features(torch.randn(1, 3, 16, 32, 32))
    assert [tuple(m.shape) for m in out["maps"]] == [(1, 96, 4, 8, 8), (1, 192, 2, 4, 4), (1, 384, 1, 2, 2), (1, 768, 1, 2, 2)]
    assert out["pooled"].shape == (1, 768)


@pytest.mark.slow
def test_paper_stage_shapes_at_the_published_input(paper):
    with torch.no_grad():
        out = paper.forward_features(torch.randn(1, 3, 64, 224, 224))
    assert [tuple(m.shape[1:]) for m in out["maps"]] == [(96, 16, 56, 56), (192, 8, 28, 28), (384, 4, 14, 14), (768, 4, 14, 14)]


@pytest.mark.parametrize("size", ["micro", "tiny"])
@pytest.mark.parametrize("volume", STUDY_VOLUMES)
def test_small_presets_fit_the_study_volumes(size, volume):
    enc = create_profound_conv(size).eval()
    assert all(n % s == 0 for n, s in zip(volume, enc.total_stride)), "FCMAE patch grid must divide the volume"
    with torch.no_grad():
        out = enc.forward_features(torch.randn(2, 3, *volume))
    for info, fmap in zip(enc.feature_info, out["maps"]):
        expected = tuple(n // s for n, s in zip(volume, info.stride))
        assert min(expected) >= 1
        assert tuple(fmap.shape) == (2, info.channels, *expected)
    assert out["pooled"].shape == (2, enc.pooled_dim)


def test_micro_is_small_and_anisotropic():
    enc = create_profound_conv("micro")
    assert enc.feature_info[0].stride == (2, 4, 4) and enc.total_stride == (8, 16, 16)
    assert sum(p.numel() for p in enc.parameters()) < 500_000


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    enc = create_profound_conv("micro", drop_path_rate=0.1).train()
    out = enc(torch.randn(2, 3, 16, 48, 48))
    # random projections: a plain sum of a LayerNorm output has zero gradient
    loss = (out["pooled"] * torch.randn_like(out["pooled"])).sum()
    loss = loss + sum((m * torch.randn_like(m)).sum() for m in out["maps"])
    loss.backward()
    starved = [n for n, p in enc.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert starved == []


def test_grn_is_the_identity_at_init_and_normalises_after():
    grn = GRN(8)
    x = torch.randn(2, 3, 4, 5, 8)
    assert torch.equal(grn(x), x)
    with torch.no_grad():
        grn.gamma.fill_(1.0)
    # brute force: each channel scaled by 1 + (its L2 norm over space) / (mean of those norms)
    norms = torch.stack([x[..., c].flatten(1).norm(dim=1) for c in range(8)], dim=-1)  # (B, C)
    relative = norms / (norms.mean(dim=-1, keepdim=True) + 1e-6)
    assert torch.allclose(grn(x), x * (1 + relative[:, None, None, None, :]), atol=1e-5)


def test_drop_path_is_random_in_training_and_off_in_eval():
    enc = create_profound_conv("micro", drop_path_rate=0.5)
    x = torch.randn(4, 3, 8, 32, 32)
    torch.manual_seed(0)
    a, b = enc(x)["pooled"], enc(x)["pooled"]
    assert not torch.allclose(a, b)
    enc.eval()
    assert torch.equal(enc(x)["pooled"], enc(x)["pooled"])


def test_registry_and_overrides():
    enc = create_encoder("profound_conv", size="micro", input_sequences=("t2w", "adc"), kernel_size=5, depths=[1, 1, 1, 1])
    assert isinstance(enc, ConvNeXtV2) and enc.input_sequences == ("t2w", "adc")
    assert enc.stages[0][0].dwconv.kernel_size == (5, 5, 5) and len(enc.stages[2]) == 1
    with pytest.raises(ValueError, match="unknown size"):
        create_profound_conv("huge")
    with pytest.raises(ValueError, match="unknown option"):
        create_profound_conv("micro", widths=(8, 16, 32, 64))
    with pytest.raises(ValueError, match="odd"):
        create_profound_conv("micro", kernel_size=4)


def test_input_size_not_divisible_by_the_total_stride_is_rejected():
    enc = create_profound_conv("micro")
    with pytest.raises(ValueError, match="total stride"):
        enc(torch.randn(1, 3, 12, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, D, H, W\)"):
        enc(torch.randn(1, 2, 8, 32, 32))


def test_preprocess_zscores_nonzero_voxels_and_keeps_zeros():
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 20.0, size=(3, 8, 32, 32)).astype(np.float32)
    image[:, :, :4] = 0.0  # background
    out = create_profound_conv("micro").preprocess(image, ("t2w", "dwi", "adc"), None)
    assert out.dtype == np.float32 and out.shape == image.shape
    for c in range(3):
        inside = out[c][image[c] != 0]
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1.0) < 1e-4
        assert np.all(out[c][image[c] == 0] == 0)


def test_preprocess_orders_channels_and_zero_fills_absent_sequences():
    rng = np.random.default_rng(1)
    adc, t2w = rng.uniform(500, 1500, (2, 8, 16, 16)).astype(np.float32)
    out = create_profound_conv("micro").preprocess(np.stack([adc, t2w]), ("adc", "t2w"), None)
    assert out.shape == (3, 8, 16, 16)
    np.testing.assert_allclose(out[0], (t2w - t2w.mean()) / t2w.std(), atol=1e-4)
    assert np.all(out[1] == 0)
    np.testing.assert_allclose(out[2], (adc - adc.mean()) / adc.std(), atol=1e-4)


def test_preprocess_guards_constant_and_empty_channels():
    image = np.stack([np.full((8, 16, 16), 7.0), np.zeros((8, 16, 16)), np.full((8, 16, 16), 3.0)]).astype(np.float32)
    out = create_profound_conv("micro").preprocess(image, ("t2w", "dwi", "adc"), None)
    assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_preprocess_rejects_bad_inputs():
    enc = create_profound_conv("micro")
    with pytest.raises(ValueError, match="len\\(sequences\\)"):
        enc.preprocess(np.ones((2, 8, 16, 16), np.float32), ("t2w", "dwi", "adc"), None)
    with pytest.raises(ValueError, match="distinct names"):
        enc.preprocess(np.ones((1, 8, 16, 16), np.float32), ("flair",), None)
