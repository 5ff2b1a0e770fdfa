"""The worked example in docs/examples/custom_encoder.py registers an encoder and runs a study."""
import csv
import math

import pytest
from examples import load_example

import taskalign
from taskalign.study.config import preset
from taskalign.study.runner import run_study



@pytest.fixture(scope="module")
def example():
    return load_example("custom_encoder")


def test_registering_twice_is_an_error(example):
    assert "tiny_cnn" in taskalign.list_encoders()
    with pytest.raises(ValueError, match="already registered"):
        taskalign.register_encoder("tiny_cnn")(example.create_tiny_cnn)


@pytest.mark.slow
def test_custom_encoder_runs_the_same_study(example, tmp_path):
    cfg = preset("smoke", encoders=("tiny_cnn",), tasks=("segmentation",))
    run_study(cfg, tmp_path, log=lambda s: None, report=False)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["encoder"], r["task"]) for r in rows] == [("tiny_cnn", "segmentation")]
    assert math.isfinite(float(rows[0]["d2p"])) and math.isfinite(float(rows[0]["value"]))
