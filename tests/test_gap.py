"""`taskalign gap`: MMD² between phantom and a folder's samples per in-house pretrained encoder,
with n stated; a folder of phantom cases sits closer to the phantom than the real case does."""
from __future__ import annotations

import json

import numpy as np
import pytest

from real_folders import SAMPLE
from taskalign.cli import main
from taskalign.data.real.export import export_phantom
from taskalign.study.gap import crop_positions, phantom_real_gap
from taskalign.study.gap_cli import format_gap

needs_sample = pytest.mark.skipif(not (SAMPLE / "cases.csv").is_file(), reason="PI-CAI sample not present")


def test_crop_positions_stay_inside_the_coverage():
    covered = np.zeros((6, 20, 20), bool)
    covered[1:6, 4:20, 0:16] = True
    rng = np.random.default_rng(0)
    for z, y, x in crop_positions(covered, (4, 8, 8), 20, rng):
        assert covered[z:z + 4, y:y + 8, x:x + 8].all()


@pytest.mark.slow
@needs_sample
def test_phantom_folder_is_closer_than_the_real_case(tmp_path, capsys):
    kw = dict(preset_name="smoke", encoders=("profound_conv",), n_phantom=4, crops_per_case=4, permutations=50,
              log=lambda s: None)
    folder = export_phantom(tmp_path / "phantom", 4, "manifest", seed=3, shape=(12, 48, 48),
                            spacing_mm=(4.0, 2.5, 2.5))
    near = phantom_real_gap(folder, tmp_path / "out", **kw)
    far = phantom_real_gap(SAMPLE / "cases.csv", tmp_path / "out", **kw)
    for report, n_real in ((near, 4 * 4), (far, 1 * 4)):
        enc = report["encoders"]["profound_conv"]
        assert enc["samples"] == "crops" and enc["n_phantom"] == 16 and enc["n_real"] == n_real
        assert 0 < enc["p_value"] <= 1 and report["region_stats"]["n_real"] >= 2
    assert far["baseline"]["encoders"]["profound_conv"]["n_real"] == 4
    assert near["encoders"]["profound_conv"]["mmd2"] < far["encoders"]["profound_conv"]["mmd2"]
    assert near["region_stats"]["mmd2"] < far["region_stats"]["mmd2"]
    assert far["n_real_cases"] == 1 and far["excluded"] == []
    # the CLI: provicnet samples slices (the centre crop's 8 slices per case); the pretraining is cached
    assert main(["gap", "--data", str(SAMPLE / "cases.csv"), "--out", str(tmp_path / "out"), "--preset", "smoke",
                 "--encoders", "provicnet", "--phantom-cases", "2", "--permutations", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["encoders"]["provicnet"]["samples"] == "slices"
    assert report["encoders"]["provicnet"]["n_phantom"] == 2 * 8 and report["encoders"]["provicnet"]["n_real"] == 8
    assert (tmp_path / "out" / "gap.json").is_file()
    text = format_gap(report)                  # the plain output prints every encoder row and the weights
    assert "provicnet" in text and "in-house weights: " + report["pretrain"] in text


def test_coverage_follows_the_context_grid():
    from real_folders import phantom_cases
    from taskalign.data.real.export import grid_of
    from taskalign.study.gap import context_case

    (case,) = phantom_cases(1)
    origin, direction = grid_of(case)
    case.meta.update(origin_xyz=origin, direction=direction)
    ctx, covered = context_case(case, (12, 48, 48), case.spacing_mm)
    assert covered.any() and not covered.all()
    assert not ctx.image[:, ~covered].any()                  # outside the image: zeros, and not covered
    assert (ctx.image[0][covered] != 0).mean() > 0.99
