"""Phantom vs real calibration: region statistics and the compare_real report."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from taskalign.data.calibration import RATIOS, compare_real, pick_tz_cases, region_stats
from taskalign.data.case import Case
from taskalign.data.phantom.cohort import describe_case

SAMPLE_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "picai_sample" / "cases.csv"
# How close the phantom (mean of 5 TZ-lesion cases) must sit to the real TZ lesion's ratios.
RATIO_TOLERANCE = {"t2w_lesion_over_gland": 0.05, "adc_lesion_over_rest": 0.05, "dwi_lesion_over_rest": 0.2}


def _toy_case() -> Case:
    image = np.zeros((3, 2, 4, 4), dtype=np.float32)
    gland = np.zeros((2, 4, 4), dtype=np.uint8)
    gland[:, 1:3, 1:3] = 1
    lesion = np.zeros_like(gland)
    lesion[0, 1, 1] = 3
    image[0] = 100.0
    image[0][gland > 0] = 50.0
    image[0][lesion > 0] = 20.0
    image[1][gland > 0], image[1][lesion > 0] = 10.0, 30.0
    image[2][gland > 0], image[2][lesion > 0] = 1500.0, 700.0
    return Case("toy", image, (3.0, 1.0, 1.0), gland=gland, lesion=lesion)


def test_region_stats_on_known_values():
    s = region_stats(_toy_case())
    assert s["t2w_gland"] == pytest.approx((7 * 50 + 20) / 8)
    assert s["t2w_lesion"] == 20 and s["t2w_gland_without_lesion"] == 50
    assert s["adc_lesion_over_rest"] == pytest.approx(700 / 1500)
    assert s["dwi_lesion_over_rest"] == pytest.approx(3.0)
    assert s["t2w_lesion_over_gland"] == pytest.approx(20 / s["t2w_gland"])
    assert s["t2w_body_median"] == 100 and s["t2w_body_p90"] == 100  # body = T2w above its non-zero p5


def test_region_stats_needs_a_lesion():
    case = _toy_case()
    case.lesion[:] = 0
    with pytest.raises(ValueError, match="empty"):
        region_stats(case)


def test_pick_tz_cases_picks_single_significant_tz_lesions():
    for index in pick_tz_cases(seed=0, n=3):
        cancers = [f for f in describe_case(index, 0)[1] if f.kind == "cancer"]
        assert len(cancers) == 1 and cancers[0].zone == "tz" and cancers[0].grade >= 2


@pytest.mark.skipif(not SAMPLE_CSV.is_file(), reason="PI-CAI sample not present")
def test_compare_real_writes_report_and_matches_ratios(tmp_path):
    result = compare_real(str(SAMPLE_CSV), str(tmp_path), seed=0)
    for name in ("png", "csv", "md"):
        assert Path(result[name]).is_file() and Path(result[name]).stat().st_size > 0
    with open(result["csv"]) as fh:
        rows = {row["statistic"]: row for row in csv.DictReader(fh)}
    assert set(RATIOS) <= set(rows) and "adc_gland" in rows
    for key in RATIOS:
        phantom, real = result[key]
        assert abs(phantom - real) <= RATIO_TOLERANCE[key], (key, phantom, real)
    assert 1000 < float(rows["adc_gland"]["phantom mean of 5"]) < 1700
    assert "real picai_sample" in rows["adc_gland"]
