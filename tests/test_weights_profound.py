"""ProFound's published checkpoint layouts: the sparse FCMAE file and dense fine-tuned files.

The synthetic FCMAE file is written by `fcmae_files.to_sparse_fcmae`, the inverse of the
documented conversion rules, so a round trip through the loader must give back the dense model
key for key and the same outputs."""
from __future__ import annotations

import warnings

import pytest
import torch

from taskalign import create_encoder
from taskalign.encoders.weights import CheckpointMismatch, CheckpointNote
from taskalign.encoders.weights.profound import dense_kernel, sparse_to_dense

from fcmae_files import ISOTROPIC, random_profound, to_sparse_fcmae


@pytest.fixture(scope="module")
def paper():
    return random_profound("paper")


def test_sparse_names_and_shapes_of_the_paper_file(paper):
    sparse = to_sparse_fcmae(paper.state_dict())
    assert sparse["encoder.downsample_layers.0.0.kernel"].shape == (64, 3, 96)     # k4 stem: (k³, in, out)
    assert sparse["encoder.downsample_layers.0.0.bias"].shape == (1, 96)
    assert sparse["encoder.downsample_layers.0.1.ln.weight"].shape == (96,)
    assert sparse["encoder.downsample_layers.1.1.kernel"].shape == (8, 96, 192)
    assert sparse["encoder.downsample_layers.3.1.kernel"].shape == (384, 768)      # k = 1: (in, out)
    assert sparse["encoder.stages.0.0.dwconv.kernel"].shape == (343, 96)           # depthwise (k³, dim)
    assert sparse["encoder.stages.2.8.pwconv1.linear.weight"].shape == (1536, 384)
    assert sparse["encoder.stages.3.2.grn.gamma"].shape == (1, 3072)
    assert "encoder.norm.weight" not in sparse


def test_fcmae_conversion_gives_the_dense_paper_model_key_for_key(paper):
    dense = paper.state_dict()
    converted, dropped = sparse_to_dense(to_sparse_fcmae(dense))
    assert sorted(dropped) == sorted(["proj.weight", "proj.bias", "mask_token", "decoder.0.dwconv.weight",
                                      "pred.weight", "pred.bias"])
    assert set(converted) == set(dense) - {"norm.weight", "norm.bias"}
    for key, value in converted.items():
        assert value.shape == dense[key].shape, key
        assert torch.equal(value, dense[key]), key


def test_kernel_axes_are_reversed():
    """Sparse offset j = a + k·b + k²·c (first axis fastest) lands at dense position [a, b, c]."""
    k = 3
    sparse = torch.arange(k ** 3, dtype=torch.float32).reshape(k ** 3, 1, 1)  # (k³, in=1, out=1)
    dense = dense_kernel("downsample_layers.1.1.weight", sparse)
    a, b, c = 2, 0, 1
    assert dense.shape == (1, 1, 3, 3, 3) and dense[0, 0, a, b, c] == a + k * b + k * k * c
    dw = dense_kernel("stages.0.0.dwconv.weight", sparse[:, :, 0])
    assert dw.shape == (1, 1, 3, 3, 3) and dw[0, 0, a, b, c] == a + k * b + k * k * c
    with pytest.raises(ValueError, match="not a cube"):
        dense_kernel("downsample_layers.1.1.weight", torch.zeros(10, 2, 2))


def test_fcmae_file_round_trip_gives_identical_outputs(tmp_path):
    original = random_profound("micro", **ISOTROPIC)
    path = tmp_path / "profound_fcmae.pth"
    torch.save({"model": to_sparse_fcmae(original.state_dict()), "epoch": 799}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = create_encoder("profound_conv", size="micro", weights=path, **ISOTROPIC).eval()
    notes = [str(w.message) for w in caught if issubclass(w.category, CheckpointNote)]
    assert any("final `norm`" in n and "ones and zeros" in n for n in notes)
    assert torch.equal(loaded.norm.weight, torch.ones(128)) and torch.equal(loaded.norm.bias, torch.zeros(128))
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        a, b = original(x), loaded(x)
    for m_a, m_b in zip(a["maps"], b["maps"]):
        assert torch.equal(m_a, m_b)
    assert torch.equal(a["pooled"], b["pooled"])  # the original's norm is at its init too


def test_fine_tuned_dense_file_leaves_heads_out(tmp_path):
    original = random_profound("micro")
    with torch.no_grad():
        original.norm.weight.mul_(1.5)
    state = {f"encoder.{k}": v for k, v in original.state_dict().items()}
    state |= {"decoder.up.0.weight": torch.randn(8, 8), "encoder.head.weight": torch.randn(2, 128)}
    path = tmp_path / "profound_finetuned_seg.pth"
    torch.save({"model": state}, path)
    with pytest.warns(CheckpointNote, match="left out 2 task-head keys"):
        loaded = create_encoder("profound_conv", size="micro", weights=str(path)).eval()
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(original(x)["pooled"], loaded(x)["pooled"])


def test_mismatches_are_listed(tmp_path):
    state = to_sparse_fcmae(random_profound("micro", **ISOTROPIC).state_dict())
    del state["encoder.stages.0.0.pwconv1.linear.bias"]
    state["encoder.stages.0.0.extra"] = torch.zeros(3)
    state["encoder.stages.1.0.norm.ln.weight"] = torch.zeros(5)
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointMismatch) as info:
        create_encoder("profound_conv", size="micro", weights=path, **ISOTROPIC)
    message = str(info.value)
    assert "1 missing, 1 unexpected, 1 mis-shaped" in message and str(path) in message
    assert "stages.0.0.pwconv1.bias" in message and "stages.0.0.extra" in message
    assert "stages.1.0.norm.weight: file (5,) vs model (32,)" in message
    report = info.value.report
    assert report.missing == ["stages.0.0.pwconv1.bias"] and report.unexpected == ["stages.0.0.extra"]


def test_a_file_of_another_size_says_which_size_it_fits(tmp_path, paper):
    path = tmp_path / "paper.pth"
    torch.save({"model": to_sparse_fcmae(paper.state_dict())}, path)
    with pytest.raises(CheckpointMismatch, match="fits size 'paper'"):
        create_encoder("profound_conv", size="tiny", weights=path)


def test_in_house_safetensors_weights_still_load(tmp_path):
    from taskalign import io

    original = random_profound("micro")
    io.save_weights(tmp_path / "weights.safetensors", original.state_dict())
    loaded = create_encoder("profound_conv", size="micro", weights=tmp_path / "weights.safetensors")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in original.state_dict().items())
