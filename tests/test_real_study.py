"""A study on a real folder: broken cases excluded with their reason, the split proportional to
the preset's, pretraining and reference sets phantom, tasks without labels skipped with a reason,
and (slow) the smoke study running end to end on an exported folder with broken cases."""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from real_folders import KINDS, broken_folder, phantom_cases
from taskalign.cli import build_parser, main
from taskalign.data.real.export import export_cases
from taskalign.study.cohort import build_cohort
from taskalign.study.config import DataConfig, preset
from taskalign.study.cohort import split_sizes
from taskalign.study.runner import run_study
from taskalign.study.task_data import task_data
from taskalign.tasks.base import create_task


def _real(cfg_data: DataConfig, path, layout="manifest", **kw) -> DataConfig:
    return dataclasses.replace(cfg_data, source="real", path=str(path), layout=layout, **kw)


def test_split_sizes_follow_the_preset():
    smoke = preset("smoke").data                    # 8 : 4 : 8
    assert split_sizes(20, smoke) == (8, 4, 8)
    assert split_sizes(10, smoke) == (4, 2, 4)
    assert split_sizes(6, smoke) == (1, 1, 4)         # the test split never drops below 4 (debiased CKA)
    with pytest.raises(ValueError, match="at least 6"):
        split_sizes(5, smoke)


def test_cohort_excludes_every_broken_case(tmp_path):
    csv_path, broken = broken_folder(tmp_path / "data", n_good=6)
    cfg = _real(preset("smoke").data, csv_path)
    cohort = build_cohort(cfg, cache_dir=str(tmp_path / "cache"))
    assert {e["case"]: e["kind"] for e in cohort.excluded} == {case: kind for kind, case in broken.items()}
    down = cohort.train + cohort.val + cohort.test
    assert len(down) == 6 and all(c.shape == cfg.shape and c.spacing_mm == cfg.spacing_mm for c in down)
    assert all(c.meta["source"] == "phantom" for c in cohort.reference)
    assert all(c.meta["source"] == "manifest" for c in down)
    splits = cohort.splits(cfg.data_seed)
    assert len(splits["excluded"]) == len(KINDS) and "phantom" in splits["notes"][0]


def test_tasks_without_labels_or_with_dropped_dwi_are_skipped(tmp_path):
    export_cases(phantom_cases(6), tmp_path / "msd", "msd")
    cfg = _real(preset("smoke").data, tmp_path / "msd", layout="msd", dwi="drop")
    cohort = build_cohort(cfg)
    reasons = {name: task_data(create_task(name), cohort, 0)[1] for name in
               ("classification", "segmentation", "distortion_correction", "synthesis", "super_resolution")}
    for name in ("classification", "segmentation", "distortion_correction"):
        assert "dwi" in reasons[name] and "dropped" in reasons[name]
    assert reasons["synthesis"] is None and reasons["super_resolution"] is None
    zero = build_cohort(dataclasses.replace(cfg, dwi="zero"))      # DWI fed as zeros: only labels are missing
    assert task_data(create_task("distortion_correction"), zero, 0)[1] is None
    assert "label" in task_data(create_task("classification"), zero, 0)[1]
    assert "lesion" in task_data(create_task("segmentation"), zero, 0)[1]


def test_study_parser_takes_data_and_layout(tmp_path):
    args = build_parser().parse_args(["study", "--out", str(tmp_path), "--data", "x.csv", "--layout", "manifest"])
    assert args.data.name == "x.csv" and args.layout == "manifest"


def test_phantom_export_command(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path / "p"), "--cases", "2", "--layout", "picai", "--preset", "smoke"]) == 0
    assert "picai layout" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "p")]) == 0


@pytest.mark.slow
def test_smoke_study_runs_on_the_rest(tmp_path):
    csv_path, broken = broken_folder(tmp_path / "data", n_good=8, kinds=("missing_file", "non_finite"))
    cfg = preset("smoke", tasks=("segmentation",), encoders=("profound_conv",))
    cfg = dataclasses.replace(cfg, data=_real(cfg.data, csv_path))
    out = tmp_path / "study"
    run_study(cfg, out, log=lambda s: None, report=False)
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["encoder"], r["task"]) for r in rows] == [("profound_conv", "segmentation")]
    assert 0.0 <= float(rows[0]["value"]) <= 1.0
    splits = json.loads((out / "splits.json").read_text())
    assert {e["case"] for e in splits["excluded"]} == set(broken.values())
    downstream = splits["train"] + splits["val"] + splits["test"]
    assert len(downstream) == 8 and not set(downstream) & set(broken.values())
    summary = json.loads((out / "summary.json").read_text())
    assert {e["case"] for e in summary["excluded_cases"]} == set(broken.values())
    assert (out / "cache").is_dir()
