"""The no-training floors of the image tasks that the README and summary.json quote."""
import math

import numpy as np
import pytest

from taskalign.study.config import preset
from taskalign.study.task_data import no_training_floors
from taskalign.study.units import StudyInputs


@pytest.fixture(scope="module")
def inputs():
    return StudyInputs(preset("smoke"))


def test_synthesis_gets_a_mean_target_floor(inputs):
    data, _ = inputs.task_data("synthesis")
    floors = no_training_floors(data)
    assert not any(k.startswith("identity_") for k in floors)          # T2w in, ADC out: no identity
    assert math.isfinite(floors["mean_target_psnr"]) and 0 < floors["mean_target_ssim"] < 1
    # the floor predicts the training mean for every case: a test case equal to it would score inf
    perfect = data.task.evaluate([np.asarray(s.target, dtype=np.float32) for s in data.test], data.test)[0]
    assert floors["mean_target_psnr"] < perfect["psnr"]


def test_degraded_input_beats_the_mean_image_on_restoration_tasks(inputs):
    for task in ("super_resolution", "distortion_correction"):
        floors = no_training_floors(inputs.task_data(task)[0])
        assert floors["identity_psnr"] > floors["mean_target_psnr"], task


def test_semantic_tasks_have_no_image_floor(inputs):
    assert no_training_floors(inputs.task_data("segmentation")[0]) == {}
