"""The smoke study end to end (DESIGN.md §8): every stage, all cells, finite values, resumable."""
import csv
import json
import math
import os

import pytest

from taskalign.study.config import preset
from taskalign.study.runner import ConfigMismatchError, run_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    cfg = preset("smoke")
    run_study(cfg, out, log=lambda s: None)
    return cfg, out


def _rows(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_every_cell_has_finite_values(smoke_study):
    cfg, out = smoke_study
    rows = _rows(out)
    assert {(r["encoder"], r["task"]) for r in rows} == {(e, t) for e in cfg.encoders for t in cfg.tasks}
    for r in rows:
        for col in ("value", "specialised_value", "scratch_value", "d2p", "d2r", "d2s", "cka_pretrained",
                    "sigma_ref"):
            if r["task"] == "classification" and col.endswith("value"):
                continue   # AUROC on 8 smoke cases may be undefined when the test split has one class
            assert math.isfinite(float(r[col])), (r["encoder"], r["task"], col, r[col])
        assert 1 <= int(r["convergence_epoch"]) <= int(r["epochs"])
        assert 0 < float(r["d2p_p"]) <= 1


def test_folder_layout_and_records(smoke_study):
    cfg, out = smoke_study
    for name in ("config.json", "splits.json", "summary.json", "timing.json", "report.html"):
        assert (out / name).exists(), name
    splits = json.loads((out / "splits.json").read_text())
    # the reference set never overlaps the downstream splits; the pretraining cohort is the card's
    downstream = set(splits["train"]) | set(splits["val"]) | set(splits["test"])
    assert not downstream & set(splits["reference"]) and "card.json" in splits["pretraining"]
    cell = out / "cells" / "provicnet" / "segmentation" / "n8" / "seed0"
    curve = [json.loads(line) for line in (cell / "curve.jsonl").read_text().splitlines()]
    assert len(curve) == cfg.train.steps // cfg.train.steps_per_epoch
    for state in ("pretrained.pt", "finetuned.pt"):
        assert (cell / "features" / state).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cells"] == len(cfg.encoders) * len(cfg.tasks)
    assert {c["alignment"] for c in summary["correlations"]} >= {"d2p", "d2r", "d2s"}
    assert all("n" in c and "spearman_p" in c for c in summary["correlations"])
    assert {c["bootstrap_over"] for c in summary["correlations"]} == {"seeds and test cases"}
    assert all(c["n"] + c["saturated_left_out"] == len(cfg.encoders) * len(cfg.tasks) for c in summary["correlations"]
               if c["alignment"] == "d2p")
    paired = {(p["encoder"], p["task"]): p for p in summary["paired_vs_specialised"]}
    assert set(paired) == {(e, t) for e in cfg.encoders for t in cfg.tasks}
    assert paired[("provicnet", "segmentation")]["test"].startswith("Wilcoxon")
    assert {c["encoder"] for c in summary["cells"]} == set(cfg.encoders)
    vs_scratch = {(p["encoder"], p["task"]) for p in summary["paired_vs_scratch"]}
    assert vs_scratch == set(paired)
    # the smoke preset pretrains 12 steps: its weights fail the gate and are never called a foundation model
    assert all(summary["start_weights"][e]["gate"] is False for e in cfg.encoders)
    assert "not a foundation model" in (out / "report.html").read_text()
    for e in cfg.encoders:
        card = next((out / "pretrain" / e).glob("*/card.json"))
        assert json.loads(card.read_text())["probe"]["gate"]["passed"] is False
    layers = json.loads((cell / "alignment.json").read_text())["layers"]
    assert len(layers) == 4 and all(math.isfinite(layer["d2p"]) for layer in layers)


def test_rerun_recomputes_nothing(smoke_study):
    cfg, out = smoke_study
    records = sorted(out.glob("cells/*/*/n*/seed*/metrics.json"))
    stamps = {p: os.stat(p).st_mtime_ns for p in records}
    before = (out / "results.csv").read_text()
    run_study(cfg, out, log=lambda s: None)
    assert {p: os.stat(p).st_mtime_ns for p in records} == stamps
    assert (out / "results.csv").read_text() == before


def test_changed_config_is_refused(smoke_study):
    cfg, out = smoke_study
    import dataclasses
    changed = dataclasses.replace(cfg, study_seed=cfg.study_seed + 1)
    with pytest.raises(ConfigMismatchError, match="another configuration"):
        run_study(changed, out, log=lambda s: None)


def test_two_regimes_end_to_end(tmp_path):
    """Two labelled-set sizes: one row per size, nested training cases, the same test cases, and
    the summary's per-regime view."""
    import dataclasses
    cfg = preset("smoke", encoders=("provicnet",), tasks=("segmentation",))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_cases=(4, 8)))
    run_study(cfg, tmp_path, log=lambda s: None, report=False)
    rows = _rows(tmp_path)
    assert sorted(int(r["n_train"]) for r in rows) == [4, 8]
    runs = {n: json.loads((tmp_path / "cells" / m / "segmentation" / f"n{n}" / "seed0" / "metrics.json").read_text())
            for n in (4, 8) for m in ("provicnet",)}
    assert len(runs[4]["train_cases"]) == 4 and set(runs[4]["train_cases"]) < set(runs[8]["train_cases"])
    for n in (4, 8):
        for m in ("provicnet-scratch", "specialised"):
            record = json.loads((tmp_path / "cells" / m / "segmentation" / f"n{n}" / "seed0" / "metrics.json")
                                .read_text())
            assert record["train_cases"] == runs[n]["train_cases"] and record["n_train"] == n
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["regimes"] == [4, 8] and [r["n_train"] for r in summary["by_regime"]] == [4, 8]
    assert {p["n_train"] for p in summary["paired_vs_scratch"]} == {4, 8}


def test_early_checkpoints_rule():
    from taskalign.study.cell import early_checkpoints
    assert early_checkpoints(96, 8) == {"early_epoch1": 8}                     # quick: 10 % is the first epoch
    assert early_checkpoints(12, 4) == {"early_epoch1": 4}                     # smoke
    assert early_checkpoints(3000, 100) == {"early_epoch1": 100, "early_10pct": 300}   # paper
    assert early_checkpoints(200, 10) == {"early_epoch1": 10, "early_10pct": 20}
    assert early_checkpoints(5, 8) == {"early_epoch1": 5}                      # a run shorter than an epoch


def test_early_features_are_measured_and_change_nothing(smoke_study, tmp_path, monkeypatch):
    """Fine-tuned runs save features after the first epoch; alignment.json, results.csv and the
    summary carry D2P / E2P there; and the run without them trains to the very same numbers."""
    import torch
    from taskalign.align.drift import layer_profile, reference_kernels
    from taskalign.align.extract import load_probe_banks
    from taskalign.study import cell as cell_module
    from taskalign.study.alignment import _reference
    from taskalign.study.units import StudyInputs, weights_path

    cfg, out = smoke_study
    ft = out / "cells" / "provicnet" / "segmentation" / "n8" / "seed0"
    align = json.loads((ft / "alignment.json").read_text())
    (early,) = align["early"]
    assert early["state"] == "early_epoch1" and early["step"] == cfg.train.steps_per_epoch
    assert not (out / "cells" / "provicnet-scratch" / "segmentation" / "n8" / "seed0" / "features"
                / "early_epoch1.pt").exists()                                  # fine-tuned runs only
    # D2P at the checkpoint: the same paired MMD² as the final D2P, on the same feature and kernel
    data = StudyInputs(cfg).regime_data("segmentation", 8)
    weights = weights_path(out, cfg, "provicnet")
    ref = _reference(out, cfg, data, "provicnet", weights)
    feature = align["feature"]
    kernel = reference_kernels({feature: ref["pretrained"][feature]}, {feature: ref["random"][feature]})[feature]
    a, b = load_probe_banks(ft, "early_epoch1")[feature], load_probe_banks(ft, "pretrained")[feature]
    direct = layer_profile({feature: a}, {feature: b}, {feature: kernel}, permutations=0)[feature]
    assert early["d2p"] == pytest.approx(direct.mmd2, rel=1e-9) and early["e2p"] == pytest.approx(direct.energy, rel=1e-9)
    best_epoch = json.loads((ft / "metrics.json").read_text())["best_epoch"]   # "finetuned": the best epoch's weights
    assert torch.equal(a, load_probe_banks(ft, "finetuned")[feature]) == (best_epoch == 1)
    row = next(r for r in _rows(out) if (r["encoder"], r["task"]) == ("provicnet", "segmentation"))
    assert float(row["d2p_epoch1"]) == pytest.approx(early["d2p"]) and math.isnan(float(row["d2p_10pct"]))
    summary = json.loads((out / "summary.json").read_text())
    early_corr = summary["early_prediction"]["correlations"]
    assert {c["alignment"] for c in early_corr} == {"d2p_epoch1", "e2p_epoch1"}
    assert {c["outcome"] for c in early_corr} == {"gain_over_scratch", "rpg", "d2p", "e2p"}
    # the same fine-tuned run without early features: identical results
    monkeypatch.setattr(cell_module, "early_checkpoints", lambda steps, per_epoch: {})
    again = cell_module.run_vfm(tmp_path, cfg, data, "provicnet", 0, weights=weights)
    first = json.loads((ft / "metrics.json").read_text())
    assert again["value"] == first["value"] and again["metrics"] == first["metrics"]
    assert not (tmp_path / "cells" / "provicnet" / "segmentation" / "n8" / "seed0" / "features"
                / "early_epoch1.pt").exists()
