"""`taskalign checkpoint inspect` and the study's `--weights` option."""
from __future__ import annotations

import json

import pytest
import torch

from taskalign.cli import main
from taskalign.encoders.weights import parse_weights_option
from taskalign.encoders.weights.provicnet import PublishedProViCNet

from fcmae_files import random_profound, to_sparse_fcmae
from planted_pickle import Planted

JSON_KEYS = {"encoder", "format", "tensors", "parameters", "missing", "unexpected"}


def _inspect(path, capsys) -> tuple[int, dict]:
    rc = main(["checkpoint", "inspect", str(path), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_inspect_an_fcmae_file(tmp_path, capsys):
    state = to_sparse_fcmae(random_profound("paper").state_dict())  # FCMAE kernels are cubes: paper size
    torch.save({"model": state}, tmp_path / "fcmae.pth")
    rc, info = _inspect(tmp_path / "fcmae.pth", capsys)
    assert rc == 0 and JSON_KEYS <= set(info)
    assert (info["encoder"], info["format"]) == ("profound_conv", "profound-fcmae")
    assert info["tensors"] == len(state) and info["parameters"] == sum(v.numel() for v in state.values())
    assert info["size"] == "paper" and info["missing"] == [] and info["unexpected"] == []
    assert any("norm" in note for note in info["notes"])


def test_inspect_a_published_provicnet_file_and_its_size(tmp_path, capsys):
    from taskalign import create_encoder

    enc = create_encoder("provicnet", size="tiny", input_sequences=("t2w",), sequence_token=False)
    state = PublishedProViCNet(enc).state_dict()
    torch.save(state, tmp_path / "T2.pth")
    rc, info = _inspect(tmp_path / "T2.pth", capsys)
    assert rc == 0 and (info["encoder"], info["format"], info["size"]) == ("provicnet", "provicnet-published", "tiny")
    torch.save({k: v for k, v in state.items() if k != "head.segmentation_conv.9.bias"} | {"extra.w": torch.zeros(1)},
               tmp_path / "T2_bad.pth")
    rc, info = _inspect(tmp_path / "T2_bad.pth", capsys)
    assert rc == 1 and info["missing"] == ["head.segmentation_conv.9.bias"] and info["unexpected"] == ["extra.w"]
    main(["checkpoint", "inspect", str(tmp_path / "T2.pth")])
    assert "provicnet-published" in capsys.readouterr().out


def test_inspect_refuses_or_cannot_place(tmp_path, capsys):
    torch.save({"model": {"a": torch.zeros(2)}, "x": Planted(tmp_path / "marker")}, tmp_path / "evil.pth")
    assert main(["checkpoint", "inspect", str(tmp_path / "evil.pth")]) == 2
    assert "refused" in capsys.readouterr().err and not (tmp_path / "marker").exists()
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    rc, info = _inspect(tmp_path / "other.pth", capsys)
    assert rc == 2 and info["encoder"] is None and info["unexpected"] == []


def test_weights_option(tmp_path):
    for name in ("T2.pth", "ADC.pth"):
        (tmp_path / name).write_bytes(b"")
    name, spec = parse_weights_option(f"provicnet={tmp_path / 'T2.pth'},adc:{tmp_path / 'ADC.pth'}")
    assert name == "provicnet" and spec == f"{(tmp_path / 'T2.pth').resolve()},adc:{(tmp_path / 'ADC.pth').resolve()}"
    with pytest.raises(ValueError, match="does not exist"):
        parse_weights_option(f"provicnet={tmp_path / 'T2.pth'},{tmp_path / 'DWI.pth'}")
    with pytest.raises(ValueError, match="ENCODER=FILE"):
        parse_weights_option(str(tmp_path / "T2.pth"))
