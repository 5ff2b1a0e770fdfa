"""The alignment stage: probe features through the real encoders, the head-read feature rule, the
cell's alignment.json (head-read and pooled D2x with saturation and energy distance), and the
saturation flags in results.csv and the correlations."""
import json
import math
import pkgutil
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import taskalign
from taskalign.align import HEAD_READS, head_bank, head_feature
from taskalign.align.drift import drift, layer_profile, reference_kernel, reference_kernels
from taskalign.align.extract import (load_probe_banks, pooled_features, probe_features, save_probe_banks,
                                    save_probe_features)
from taskalign.data.case import SEQUENCES
from taskalign.data.phantom import make_cohort
from taskalign.encoders import create_encoder


def _inputs(encoder, n, seed):
    cases = make_cohort(n, seed=seed, cohort="downstream", shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))
    return [encoder.preprocess(c.image, SEQUENCES, c.gland) for c in cases]


def _perturb(encoder):
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.5 * p.std().nan_to_num(0.1) * torch.randn_like(p))


@pytest.mark.parametrize("name", ["profound_conv", "provicnet"])
def test_unchanged_encoder_has_zero_d2p_and_a_changed_one_does_not(name):
    torch.manual_seed(0)
    encoder = create_encoder(name, size="micro")
    inputs = _inputs(encoder, 12, 5)
    before = pooled_features(encoder, inputs)
    kernel = reference_kernel(before)
    same = drift(pooled_features(encoder, inputs), before, kernel, permutations=200, seed=0)
    assert abs(same.mmd2) < 1e-6
    _perturb(encoder)
    moved = drift(pooled_features(encoder, inputs), before, kernel, permutations=200, seed=0)
    assert moved.mmd2 > 0.05 and moved.p_value < 0.05


@pytest.mark.parametrize("name", ["profound_conv", "provicnet"])
def test_head_feature_is_the_last_map_mean_for_every_task_kind(name):
    """What the heads read: the last map (ProViCNet: its patch tokens, not the cls token)."""
    torch.manual_seed(0)
    encoder = create_encoder(name, size="micro").eval()
    x = torch.from_numpy(np.stack(_inputs(encoder, 2, 7))).float()
    with torch.no_grad():
        out = encoder.forward_features(x)
    last = out["maps"][-1].mean(dim=(2, 3, 4))              # (B, C, S|D, H, W) -> (B, C)
    assert set(HEAD_READS) == {"classification", "segmentation", "image"}
    for kind in HEAD_READS:
        assert torch.allclose(head_feature(kind, out), last, atol=1e-6)
    assert head_bank("segmentation", ["pooled", "stage0", "stage10", "stage2"]) == "stage10"
    with pytest.raises(ValueError, match="no head-read rule"):
        head_feature("regression", out)
    with pytest.raises(ValueError, match="no stage"):
        head_bank("image", ["pooled"])


def test_probe_banks_round_trip_and_layer_profile():
    """One forward gives the pooled features and a spatial mean per stage; they round-trip
    through the run folder; an unchanged encoder has D2P ≈ 0 at every stage, a perturbed one not."""
    torch.manual_seed(0)
    encoder = create_encoder("profound_conv", size="micro")
    inputs = _inputs(encoder, 10, 6)
    banks = probe_features(encoder, inputs)
    maps = encoder.forward_features(torch.from_numpy(inputs[0][None]).float())["maps"]
    assert list(banks) == ["pooled"] + [f"stage{k}" for k in range(len(maps))]
    assert [banks[f"stage{k}"].shape for k in range(len(maps))] == [(10, m.shape[1]) for m in maps]
    assert torch.equal(banks["pooled"], pooled_features(encoder, inputs))


def test_saved_banks_give_a_layer_profile(tmp_path):
    torch.manual_seed(0)
    encoder = create_encoder("profound_conv", size="micro")
    inputs = _inputs(encoder, 10, 6)
    save_probe_features(tmp_path, "pretrained", encoder, inputs)
    save_probe_features(tmp_path, "finetuned", encoder, inputs)
    pre, ft = load_probe_banks(tmp_path, "pretrained"), load_probe_banks(tmp_path, "finetuned")
    assert torch.equal(pre["pooled"], probe_features(encoder, inputs)["pooled"])
    assert (tmp_path / "features" / "stages" / "pretrained_0.pt").exists() and load_probe_banks(tmp_path, "x") is None
    stages = {k: v for k, v in pre.items() if k != "pooled"}
    kernels = reference_kernels(stages)
    same = layer_profile({k: ft[k] for k in stages}, stages, kernels, permutations=0)
    assert all(abs(r.mmd2) < 1e-6 and r.cka > 0.999 and abs(r.energy) < 1e-5 for r in same.values())
    _perturb(encoder)
    save_probe_features(tmp_path, "finetuned", encoder, inputs)
    ft = load_probe_banks(tmp_path, "finetuned")
    moved = layer_profile({k: ft[k] for k in stages}, stages, kernels, permutations=0)
    assert all(r.mmd2 > 0.01 and r.energy > 0 for r in moved.values())


# ---- one alignment path -------------------------------------------------------------------------

def test_one_layer_profile_in_the_package():
    """Alignment has one path (STYLE.md 13): a single function named layer_profile, in align.drift,
    and the study stage goes through it."""
    root = Path(taskalign.__file__).parent
    defs = [str(p.relative_to(root)) for p in root.rglob("*.py")
            if re.search(r"^\s*def layer_profile\(", p.read_text(), re.M)]
    assert defs == ["align/drift.py"]
    import taskalign.study.alignment as stage
    assert not hasattr(stage, "probe_features") or stage.probe_features.__module__ == "taskalign.align.extract"
    assert "layer_profile" in stage.__dict__ and stage.layer_profile.__module__ == "taskalign.align.drift"
    import taskalign.study.cell as cell
    assert cell.save_probe_features.__module__ == "taskalign.align.extract"
    names = {m.name for m in pkgutil.walk_packages(taskalign.__path__, "taskalign.")}
    assert "taskalign.align.extract" in names and "taskalign.align.head_features" in names


# ---- the cell's alignment.json ------------------------------------------------------------------

def _banks(n, seed, shift=0.0, collapsed=False):
    g = torch.Generator().manual_seed(seed)
    spread = 1e-3 if collapsed else 1.0
    return {"pooled": spread * torch.randn(n, 6, generator=g) + shift,
            "stage0": torch.randn(n, 4, generator=g) + shift, "stage1": torch.randn(n, 5, generator=g) + shift}


def _fake_cell(tmp_path, monkeypatch, kind="segmentation"):
    """Finished fine-tuned and scratch runs of one cell with a collapsed pooled feature, and a
    reference set whose random-init features are spread."""
    from taskalign.study import alignment
    from taskalign.study.cell import run_dir
    from taskalign.study.config import smoke

    cfg = smoke()
    ft_dir, sc_dir = run_dir(tmp_path, "enc", "seg", 4, 0), run_dir(tmp_path, "enc-scratch", "seg", 4, 0)
    pre = _banks(8, 1, collapsed=True)
    save_probe_banks(ft_dir, "pretrained", pre)
    save_probe_banks(ft_dir, "finetuned", {k: v + 0.3 * _banks(8, 2)[k] * (1e-3 if k == "pooled" else 1)
                                           for k, v in pre.items()})
    save_probe_banks(sc_dir, "random", _banks(8, 3, shift=2.0))
    save_probe_banks(sc_dir, "scratch", _banks(8, 4, shift=1.0))
    reference = {"pretrained": _banks(8, 5, collapsed=True), "random": _banks(8, 6, shift=2.0)}
    calls = []
    monkeypatch.setattr(alignment, "_reference", lambda *a: calls.append(a) or reference)
    data = SimpleNamespace(task=SimpleNamespace(name="seg", kind=kind, input_sequences=("t2w",)), reference=[],
                           train=[None] * 4)
    return alignment, cfg, data, ft_dir, calls


def test_align_cell_measures_the_head_read_feature_with_saturation_and_energy(tmp_path, monkeypatch):
    alignment, cfg, data, ft_dir, calls = _fake_cell(tmp_path, monkeypatch)
    record = alignment.align_cell(tmp_path, cfg, data, "enc", 0, tmp_path / "w.safetensors")
    assert record["feature"] == "stage1" and "segmentation" in record["feature_rule"]
    for d in ("d2p", "d2r", "d2s"):
        for block in (record, record["pooled"]):
            assert set(block[d]) >= {"mmd2", "p_value", "saturation", "saturated", "energy"}
            assert block[d]["saturated"] == (block[d]["saturation"] >= 0.9)
            assert math.isfinite(block[d]["energy"])        # a U-statistic: may dip below 0 near no drift
    assert record["d2r"]["energy"] > record["d2p"]["energy"] and record["pooled"]["d2r"]["energy"] > 1
    assert record["d2p"]["mmd2"] < record["d2r"]["mmd2"]
    assert record["sigma_ref"] != record["pooled"]["sigma_ref"]
    assert set(record["cka"]) == {"pretrained", "random", "scratch"}
    assert [layer["stage"] for layer in record["layers"]] == [0, 1]
    assert record["layers"][1]["d2p"] == pytest.approx(record["d2p"]["mmd2"], rel=1e-6)
    # resumable: a cell with alignment.json is read back, never recomputed
    written = (ft_dir / "alignment.json").read_text()
    assert alignment.align_cell(tmp_path, cfg, data, "enc", 0, tmp_path / "w.safetensors") == json.loads(written)
    assert len(calls) == 1


def test_align_cell_names_missing_features(tmp_path, monkeypatch):
    alignment, cfg, data, ft_dir, _ = _fake_cell(tmp_path, monkeypatch)
    (ft_dir / "features" / "finetuned.pt").unlink()
    with pytest.raises(FileNotFoundError, match="finetuned.pt"):
        alignment.align_cell(tmp_path, cfg, data, "enc", 0, tmp_path / "w.safetensors")


# ---- results.csv and the correlations -----------------------------------------------------------

def test_results_columns_from_new_and_old_alignment_records():
    from taskalign.study.analysis.results import COLUMNS, drift_columns

    for column in ("d2p", "d2r", "d2s", "d2p_d2r_ratio", "cka_pretrained", "d2p_saturated", "e2p", "e2r", "e2s",
                   "d2p_pooled", "d2p_pooled_saturated", "e2p_pooled", "feature"):
        assert column in COLUMNS
    new = {"d2p": {"mmd2": 0.5, "saturation": 0.95, "energy": 1.5}, "d2r": {"mmd2": 0.7, "saturation": 0.2},
           "d2s": {"mmd2": 0.6}}
    cols = drift_columns(new, "")
    assert cols["d2p_saturated"] is True and cols["d2r_saturated"] is False and cols["d2s_saturated"] is False
    assert cols["e2p"] == 1.5 and math.isnan(cols["e2r"]) and math.isnan(cols["d2s_saturation"])
    old = drift_columns({}, "_pooled")        # an alignment.json written before the pooled block
    assert math.isnan(old["d2p_pooled"]) and old["d2p_pooled_saturated"] is False and math.isnan(old["e2s_pooled"])


def test_saturation_note_names_the_saturated_cells_only():
    from taskalign.study.analysis.results import saturation_note

    def row(encoder, task, d2p, d2r, d2s):
        return {"encoder": encoder, "task": task, "n_train": 16, "seed": 0, "d2p_saturation": d2p, "d2r_saturation": d2r,
                "d2s_saturation": d2s}
    rows = [row("provicnet", "synthesis", 0.97, 0.85, float("nan")), row("profound_conv", "synthesis", 0.3, 0.5, 0.6),
            row("provicnet", "segmentation", 0.95, 0.93, 0.91)]
    note = saturation_note(rows)
    assert "provicnet/synthesis/n16/seed0 D2P;" in note and "provicnet/segmentation/n16/seed0 D2P,D2R,D2S" in note
    assert "profound_conv" not in note
    assert saturation_note(rows[1:2]) is None


def test_saturated_values_are_left_out_of_the_correlations(tmp_path):
    from taskalign.study.analysis.correlate import cell_correlations

    rng = np.random.default_rng(3)
    rows = []
    for c in range(6):
        for s in range(2):
            rows.append({"encoder": f"e{c % 2}", "task": f"t{c // 2}", "n_train": 16, "seed": s, "metric": "psnr",
                         "higher_is_better": True, "d2p": c + 0.1 * rng.normal(), "d2r": 10.0 + c,
                         "d2p_d2r_ratio": 0.1 * c, "rpg": -2.0 * c + rng.normal(),
                         "d2p_saturated": c == 0, "d2r_saturated": "True" if (c, s) == (5, 1) else "False"})
    before = [dict(r) for r in rows]
    recs = {r["alignment"]: r for r in cell_correlations(tmp_path, rows, ["d2p", "d2r", "d2p_d2r_ratio"], ["rpg"],
                                                         seed=0, permutations=50, bootstrap=50)}
    assert recs["d2p"]["saturated_left_out"] == 2 and recs["d2p"]["n"] == 5      # both seeds of cell 0: cell gone
    assert "2 seed value(s) of d2p" in recs["d2p"]["saturation_note"]
    assert recs["d2r"]["saturated_left_out"] == 1 and recs["d2r"]["n"] == 6      # the other seed remains
    assert recs["d2p_d2r_ratio"]["saturated_left_out"] == 3 and recs["d2p_d2r_ratio"]["n"] == 5
    assert rows == before                                                         # the caller's rows untouched
    clean = [{**r, "d2p_saturated": False, "d2r_saturated": False} for r in rows]
    rec = cell_correlations(tmp_path, clean, ["d2p"], ["rpg"], seed=0, permutations=50, bootstrap=50)[0]
    assert rec["saturated_left_out"] == 0 and rec["n"] == 6 and "saturation_note" not in rec


def test_within_task_leaves_a_saturated_d2p_out():
    from taskalign.study.analysis.summary import within_task

    rows = [{"task": "t", "encoder": "a", "d2p": 0.1, "rpg": 5.0, "d2p_saturated": False},
            {"task": "t", "encoder": "b", "d2p": 0.9, "rpg": 1.0, "d2p_saturated": "True"}]   # results.csv text
    assert within_task(rows)["n_tasks"] == 0                      # b's D2P measures spread: no pair left
    rows[1]["d2p_saturated"] = False
    assert within_task(rows)["n_tasks"] == 1 and within_task(rows)["n_agree"] == 1
