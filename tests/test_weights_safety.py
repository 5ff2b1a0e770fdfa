"""Checkpoints are read without executing code: files that need pickle are refused, and code
planted in a file does not run."""
from __future__ import annotations

import argparse
import pickle

import pytest
import torch
from safetensors.torch import save_file

from taskalign import create_encoder
from taskalign.encoders.weights import CheckpointRefused, read_state_dict

from planted_pickle import Planted


def _weights() -> dict[str, torch.Tensor]:
    return {"downsample_layers.0.0.weight": torch.zeros(2, 3, 4, 4, 4)}


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_planted_code_is_refused_and_does_not_run(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    payload = {"model": _weights(), "extra": Planted(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:  # a legacy (non-zip) pickle file
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(CheckpointRefused, match="never executes pickled code") as info:
        read_state_dict(path)
    assert "weights_only=False" in str(info.value) and "safetensors" in str(info.value)  # how to convert it
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointRefused):
        create_encoder("profound_conv", size="micro", weights=path)
    assert not marker.exists()


def test_training_arguments_object_is_refused(tmp_path):
    """MAE-style files carry `args` (an argparse.Namespace): it needs pickle, so it is refused."""
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": _weights(), "args": argparse.Namespace(lr=1e-3), "epoch": 799}, path)
    with pytest.raises(CheckpointRefused, match="refused"):
        read_state_dict(path)


def test_plain_tensor_files_are_read(tmp_path):
    torch.save({"model": _weights(), "epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "a.pth")
    save_file(_weights(), str(tmp_path / "b.safetensors"))
    for name in ("a.pth", "b.safetensors"):
        state = read_state_dict(tmp_path / name)
        assert list(state) == ["downsample_layers.0.0.weight"] and state["downsample_layers.0.0.weight"].shape == (2, 3, 4, 4, 4)


def test_unreadable_and_non_tensor_files_are_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointRefused, match="not a readable"):
        read_state_dict(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointRefused, match="not a readable safetensors"):
        read_state_dict(tmp_path / "junk.safetensors")
    torch.save({"model": {"a": torch.zeros(1), "b": [1, 2]}}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointRefused, match=r"1 entries are not tensors: \['b'\]"):
        read_state_dict(tmp_path / "mixed.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict(tmp_path / "absent.pth")
