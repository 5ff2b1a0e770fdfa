"""The worked example in docs/examples/custom_source.py registers a data source, and a study
runs on it: the cohort comes from the registry, whatever the source's name."""
import csv
import math

import pytest
from examples import load_example

from taskalign.data.sources import list_sources, register_source
from taskalign.errors import UnknownName
from taskalign.study.cohort import build_cohort
from taskalign.study.runner import run_study



@pytest.fixture(scope="module")
def example():
    return load_example("custom_source")


def test_registered_source_is_the_cohort(example):
    cfg = example.study_config()
    assert "noisy_scanner" in list_sources()
    with pytest.raises(ValueError, match="already registered"):
        register_source("noisy_scanner")(example.noisy_scanner)
    cohort = build_cohort(cfg.data)
    down = cohort.train + cohort.val + cohort.test
    n_asked = cfg.data.n_train + cfg.data.n_val + cfg.data.n_test
    assert len(down) == n_asked - 1 and all(c.meta.get("site") == "noisy_scanner" for c in down)
    assert [e["reason"] for e in cohort.excluded] == ["not transferred from the scanner"]
    assert len(cohort.test) >= 4 and cohort.train and cohort.val          # split in the preset's proportions
    assert all("site" not in c.meta for c in cohort.reference)   # those stay phantom
    assert any("noisy_scanner" in note for note in cohort.notes)


def test_unknown_source_is_refused_before_any_work(example, tmp_path):
    import dataclasses
    cfg = example.study_config()
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="no_such_source"))
    with pytest.raises(UnknownName, match="no_such_source.*noisy_scanner"):
        run_study(cfg, tmp_path / "s", log=lambda s: None, report=False)
    assert not (tmp_path / "s").exists()


def test_registered_source_runs_a_smoke_study(example, tmp_path):
    run_study(example.study_config(), tmp_path, log=lambda s: None, report=False)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["encoder"], r["task"]) for r in rows] == [("profound_conv", "segmentation")]
    assert math.isfinite(float(rows[0]["value"])) and math.isfinite(float(rows[0]["d2p"]))
    splits = (tmp_path / "splits.json").read_text()
    assert "not transferred from the scanner" in splits and "noisy_scanner" in splits
