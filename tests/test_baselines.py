"""Specialised baselines (MONAI DenseNet / DynUNet), SpecialisedModel and specialised_preprocess."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet, DenseNet121, DynUNet

from taskalign.baselines import build_specialised, plan_dynunet, shallow_densenet_blocks
from taskalign.models import SpecialisedModel, specialised_preprocess

SHAPES = [(8, 32, 32), (16, 48, 48)]


# ---- choice of network ----------------------------------------------------------------------------

def test_densenet121_when_the_crop_allows_it_else_a_shallow_densenet():
    assert isinstance(build_specialised("classification", 3, 1, (32, 64, 64)), DenseNet121)
    for shape in SHAPES + [(32, 32, 24)]:
        net = build_specialised("classification", 3, 1, shape)
        assert isinstance(net, DenseNet) and not isinstance(net, DenseNet121)


def test_shallow_densenet_depth_fits_the_smallest_axis():
    assert shallow_densenet_blocks((8, 32, 32)) == (3, 3)
    assert shallow_densenet_blocks((16, 48, 48)) == (2, 2, 2)
    assert shallow_densenet_blocks((4, 32, 32)) == (4,)


@pytest.mark.parametrize("kind", ["segmentation", "image"])
def test_dense_kinds_get_a_plain_dynunet(kind):
    net = build_specialised(kind, 1, 1, (16, 48, 48))
    assert isinstance(net, DynUNet) and not net.deep_supervision
    assert list(net.filters) == [16, 32, 64, 128]


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown task kind"):
        build_specialised("detection", 3, 1, (8, 32, 32))


# ---- DynUNet planning --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES + [(12, 40, 40), (64, 224, 224), (5, 17, 17), (2, 8, 8)])
def test_dynunet_strides_never_shrink_an_axis_below_two_voxels(shape):
    kernels, strides = plan_dynunet(shape)
    assert len(kernels) == len(strides) >= 3 and strides[0] == (1, 1, 1)
    total = np.prod(np.array(strides), axis=0)
    for n, t in zip(shape, total):
        assert n % t == 0 and (n // t >= 2 or t == 1)


def test_thick_slices_are_pooled_in_plane_first():
    kernels, strides = plan_dynunet((8, 32, 32))
    assert strides[1] == (1, 2, 2) and kernels[0] == (1, 3, 3)
    assert plan_dynunet((32, 32, 32))[1][1] == (2, 2, 2)
    assert plan_dynunet((8, 32, 32), spacing_mm=(1.0, 1.0, 1.0))[1][1] == (2, 2, 2)  # spacing overrides the proxy


def test_plan_rejects_bad_shapes():
    with pytest.raises(ValueError, match="volume_shape"):
        plan_dynunet((32, 32))


# ---- shapes and training ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_output_shapes(shape):
    x = torch.randn(2, 3, *shape)
    with torch.no_grad():
        assert SpecialisedModel(build_specialised("classification", 3, 1, shape)).eval()(x).shape == (2, 1)
        assert SpecialisedModel(build_specialised("segmentation", 3, 2, shape)).eval()(x).shape == (2, 2, *shape)
        assert SpecialisedModel(build_specialised("image", 3, 2, shape)).eval()(x).shape == (2, 2, *shape)


def test_specialised_model_ignores_slices_and_has_one_group():
    model = SpecialisedModel(build_specialised("image", 1, 1, (8, 32, 32), filters=(4, 8, 16, 32))).eval()
    x = torch.randn(1, 1, 8, 32, 32)
    assert not model.slice_wise
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 2])), model(x))
    groups = model.parameter_groups(1e-4, 1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("network", 1e-3)]
    assert len(groups[0]["params"]) == len(list(model.parameters()))


def _overfit(model, x, target, loss_fn, steps: int, lr: float) -> list[float]:
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def test_shallow_densenet_overfits_one_batch():
    torch.manual_seed(0)
    model = SpecialisedModel(build_specialised("classification", 3, 1, (8, 32, 32)))
    x, y = torch.randn(4, 3, 8, 32, 32), torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    losses = _overfit(model, x, y, F.binary_cross_entropy_with_logits, steps=30, lr=3e-3)
    assert min(losses[-3:]) < 0.1 * losses[0]


def test_dynunet_overfits_one_batch():
    torch.manual_seed(0)
    model = SpecialisedModel(build_specialised("segmentation", 3, 2, (8, 32, 32), filters=(8, 16, 32, 64)))
    x = torch.randn(1, 3, 8, 32, 32)
    target = (F.avg_pool3d(x[:, :1], 3, stride=1, padding=1) > 0.1).long()[:, 0]
    losses = _overfit(model, x, target, F.cross_entropy, steps=50, lr=1e-2)
    assert min(losses[-3:]) < 0.1 * losses[0]


# ---- preprocessing -------------------------------------------------------------------------------------

def test_specialised_preprocess_zscores_non_zero_voxels_per_channel():
    rng = np.random.default_rng(0)
    image = np.zeros((3, 4, 8, 8), dtype=np.float32)
    image[0, :, 2:6, 2:6] = rng.normal(500.0, 80.0, (4, 4, 4))
    image[1] = rng.uniform(10.0, 20.0, (4, 8, 8))          # no zeros
    # channel 2 absent (all zero)
    out = specialised_preprocess(image, ("t2w", "dwi", "adc"), None)
    assert out.dtype == np.float32 and out.shape == image.shape
    for c in (0, 1):
        inside = image[c] != 0
        assert abs(out[c][inside].mean()) < 1e-4 and abs(out[c][inside].std() - 1.0) < 1e-3
        assert np.all(out[c][~inside] == 0)
    assert np.all(out[2] == 0)


def test_specialised_preprocess_checks_channels():
    with pytest.raises(ValueError, match="len\\(sequences\\)"):
        specialised_preprocess(np.ones((2, 4, 8, 8), np.float32), ("t2w",), None)
