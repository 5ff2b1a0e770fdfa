"""The study with `--weights ENCODER=FILE`: published files replace in-house pretraining, and
ProViCNet's per-sequence files give each sequence its own backbone (scratch runs too)."""
from __future__ import annotations

import csv
import dataclasses
import math

import pytest
import torch

from taskalign import create_encoder
from taskalign.cli import main
from taskalign.encoders.provicnet_per_sequence import ProViCNetPerSequence
from taskalign.encoders.weights import parse_weights_option
from taskalign.encoders.weights.provicnet import PublishedProViCNet
from taskalign.study.config import preset
from taskalign.study.pretrain_stage import load_encoder, weights_dir


def _published_files(folder) -> dict[str, torch.Tensor]:
    """Micro-size published-layout files T2.pth, ADC.pth, DWI.pth; returns each file's pos_embed."""
    pos = {}
    for i, (seq, name) in enumerate((("t2w", "T2.pth"), ("adc", "ADC.pth"), ("dwi", "DWI.pth"))):
        torch.manual_seed(10 + i)
        enc = create_encoder("provicnet", size="micro", input_sequences=(seq,), sequence_token=False)
        torch.save(PublishedProViCNet(enc).state_dict(), folder / name)
        pos[seq] = enc.backbone.pos_embed.detach().clone()
    return pos


def test_load_encoder_uses_the_published_architecture_for_both_runs(tmp_path):
    pos = _published_files(tmp_path)
    spec = parse_weights_option(f"provicnet={tmp_path / 'T2.pth'},{tmp_path / 'ADC.pth'},{tmp_path / 'DWI.pth'}")
    cfg = dataclasses.replace(preset("smoke"), weights=(spec,))
    finetune = load_encoder("provicnet", cfg, ("t2w", "dwi", "adc"), spec[1])
    scratch = load_encoder("provicnet", cfg, ("t2w", "dwi", "adc"), None)
    assert isinstance(finetune, ProViCNetPerSequence) and isinstance(scratch, ProViCNetPerSequence)
    for seq in ("t2w", "dwi", "adc"):
        assert torch.equal(finetune.sequences[seq].backbone.pos_embed, pos[seq])
        assert not torch.equal(scratch.sequences[seq].backbone.pos_embed, pos[seq])
    cache = weights_dir(tmp_path / "study", "provicnet", cfg, spec[1])
    assert cache.parent == tmp_path / "study" / "pretrain" / "provicnet" and cache.name.startswith("given-")


@pytest.mark.slow
def test_smoke_study_with_published_provicnet_files(tmp_path):
    _published_files(tmp_path)
    files = ",".join(str(tmp_path / n) for n in ("T2.pth", "ADC.pth", "DWI.pth"))
    out = tmp_path / "study"
    rc = main(["study", "--preset", "smoke", "--out", str(out), "--encoders", "provicnet", "--tasks",
               "super_resolution", "--weights", f"provicnet={files}", "--no-report"])
    assert rc == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["encoder"], r["task"]) for r in rows] == [("provicnet", "super_resolution")]
    assert all(math.isfinite(float(rows[0][c])) for c in ("value", "d2p", "d2r", "d2s"))
    stage = out / "pretrain" / "provicnet"
    assert [p.name[:6] for p in stage.iterdir()] == ["given-"]            # no in-house pretraining ran
    reference = next(stage.iterdir()) / "reference_t2w" / "features"    # the study-side cache of the reference set
    assert (reference / "pretrained.pt").exists() and (reference / "random.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ADC.pth", "DWI.pth", "T2.pth", "study"]
