"""The built-in phantom: determinism, cohorts, contrasts, labels, grids and the data-source registry."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from taskalign.data.case import Case
from taskalign.data.phantom import (ADC_CSPCA_MAX, SCANNERS, VOLUME_CSPCA_MIN_CC, is_significant, make_cohort,
                                    phantom_case)
from taskalign.data.phantom.cohort import describe_case
from taskalign.data.phantom.noise import smooth_field
from taskalign.data.sources import create_source, list_sources, register_source

SMOKE = dict(shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))
PREVALENCE_BAND = (0.38, 0.52)        # population share of csPCa-positive downstream cases
PREVALENCE_BAND_40 = (0.25, 0.70)     # the same over 40 rendered cases (binomial spread)


@pytest.fixture(scope="module")
def quick_cohort() -> list[Case]:
    return make_cohort(24, seed=0, cohort="downstream")


def _arrays(case: Case) -> list[np.ndarray]:
    return [case.image, case.gland, case.zones, case.lesion, case.body, case.meta["air"]]


def test_same_arguments_give_identical_case():
    a, b = phantom_case(3, seed=11), phantom_case(3, seed=11)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert (a.label, a.pirads, a.case_id) == (b.label, b.pirads, b.case_id)


def test_different_index_or_seed_gives_different_case():
    base = phantom_case(0, seed=0)
    for other in (phantom_case(1, seed=0), phantom_case(0, seed=1)):
        assert not np.array_equal(base.image, other.image)
        assert not np.array_equal(base.gland, other.gland)


def test_cohorts_are_disjoint_and_use_different_scanners():
    down = make_cohort(6, seed=0, cohort="downstream", **SMOKE)
    pre = make_cohort(6, seed=0, cohort="pretrain", **SMOKE)
    for d in down:
        assert all(not np.array_equal(d.image, p.image) for p in pre)
    assert all(d.meta["gland_volume_cc"] != p.meta["gland_volume_cc"] for d in down for p in pre)
    down_names = {s.name for s in SCANNERS["downstream"]}
    pre_names = {s.name for s in SCANNERS["pretrain"]}
    assert not down_names & pre_names
    assert {c.meta["scanner"]["name"] for c in down} <= down_names
    assert {c.meta["scanner"]["name"] for c in pre} <= pre_names


@pytest.mark.parametrize("shape,spacing", [((8, 32, 32), (4.0, 2.5, 2.5)), ((16, 48, 48), (3.0, 1.5, 1.5)),
                                           ((5, 20, 24), (3.3, 2.0, 1.8))])
def test_shapes_dtypes_spacing(shape, spacing):
    case = phantom_case(2, seed=0, shape=shape, spacing_mm=spacing)
    assert case.image.shape == (3, *shape) and case.image.dtype == np.float32
    assert case.spacing_mm == spacing
    assert np.isfinite(case.image).all() and (case.image >= 0).all()
    for name, dtype in (("gland", np.uint8), ("zones", np.uint8), ("lesion", np.uint8), ("body", np.bool_)):
        arr = getattr(case, name)
        assert arr.shape == shape and arr.dtype == dtype, name
    assert case.meta["air"].shape == shape and case.meta["air"].dtype == np.bool_
    assert set(np.unique(case.zones)) <= {0, 1, 2} and set(np.unique(case.gland)) <= {0, 1}
    assert case.lesion.max() <= 5 and 1 <= case.pirads <= 5 and case.label in (0, 1)
    assert case.case_id == "phantom-downstream-0002" and case.meta["lesion_values"] == "isup"


def test_label_rule_matches_masks_and_lesion_draws(quick_cohort):
    for case in quick_cohort:
        assert case.label == int((case.lesion >= 2).any())
        assert np.all(case.gland[case.lesion > 0] == 1), "lesions lie inside the gland"
        assert np.array_equal(case.zones > 0, case.gland > 0)
        for les in case.meta["lesions"]:
            assert (les["grade"] >= 2) == is_significant(les["adc"], les["volume_cc"])
            assert les["significant"] == (les["adc"] < ADC_CSPCA_MAX and les["volume_cc"] >= VOLUME_CSPCA_MIN_CC)
        graded = {int(v) for v in np.unique(case.lesion) if v > 0}
        assert graded <= {les["grade"] for les in case.meta["lesions"]}


def test_prevalence_in_band():
    population = [any(f.kind == "cancer" and f.significant for f in describe_case(i, 0)[1]) for i in range(400)]
    assert PREVALENCE_BAND[0] <= np.mean(population) <= PREVALENCE_BAND[1]
    rendered = [c.label for c in make_cohort(40, seed=0, cohort="downstream", **SMOKE)]
    assert PREVALENCE_BAND_40[0] <= np.mean(rendered) <= PREVALENCE_BAND_40[1]
    assert 0 < sum(rendered) < 40


def _median_region(cases, seq, region):
    return float(np.median([c.sequence(seq)[region(c)].mean() for c in cases if region(c).any()]))


def test_contrasts_ordered_as_documented(quick_cohort):
    pz = lambda c: (c.zones == 1) & (c.lesion == 0)  # noqa: E731
    tz = lambda c: (c.zones == 2) & (c.lesion == 0)  # noqa: E731
    cancer = lambda c: c.lesion >= 2  # noqa: E731
    rest = lambda c: (c.gland > 0) & (c.lesion == 0)  # noqa: E731
    adc_pz, adc_tz, adc_les = (_median_region(quick_cohort, "adc", r) for r in (pz, tz, cancer))
    assert adc_les < adc_tz < adc_pz
    assert 1450 < adc_pz < 2000 and 1050 < adc_tz < 1400 and 600 < adc_les < 1000
    assert _median_region(quick_cohort, "dwi", cancer) > 1.5 * _median_region(quick_cohort, "dwi", rest)
    assert _median_region(quick_cohort, "t2w", pz) > 1.3 * _median_region(quick_cohort, "t2w", tz)
    assert _median_region(quick_cohort, "t2w", cancer) < _median_region(quick_cohort, "t2w", rest)


def test_cspca_lesions_span_several_voxels(quick_cohort):
    extents = []
    for case in quick_cohort:
        labelled, n = ndimage.label(case.lesion >= 2)
        for box in ndimage.find_objects(labelled):
            extents.append([s.stop - s.start for s in box])
    extents = np.array(extents)
    assert len(extents) >= 5
    assert np.median(extents[:, 1:]) >= 6 and np.median(extents[:, 0]) >= 3


def test_air_and_body_masks_are_physical(quick_cohort):
    with_air = [c for c in quick_cohort if c.meta["air"].any()]
    assert len(with_air) >= len(quick_cohort) // 2
    for case in with_air:
        t2w = case.sequence("t2w")
        assert t2w[case.meta["air"]].mean() < 0.3 * t2w[case.gland > 0].mean()
        assert not (case.body & case.meta["air"]).any()


def test_anatomy_is_physical_across_grids():
    """One patient on two grids: same gland in mm³; nominal volume in the documented range."""
    coarse = phantom_case(4, seed=0, shape=(32, 96, 96), spacing_mm=(2.0, 1.0, 1.0))
    fine = phantom_case(4, seed=0, shape=(24, 80, 80), spacing_mm=(3.0, 1.2, 1.2))
    vol = [c.gland.sum() * np.prod(c.spacing_mm) / 1000 for c in (coarse, fine)]
    assert abs(vol[0] - vol[1]) < 0.1 * vol[0]
    assert 20 <= coarse.meta["gland_volume_cc"] <= 80
    assert 0.7 * coarse.meta["gland_volume_cc"] < vol[0] < 1.3 * coarse.meta["gland_volume_cc"]


def test_smooth_field_is_grid_independent_and_normalised():
    z, y, x = np.arange(12) * 2.0, np.arange(40) * 0.5, np.arange(36) * 0.5
    full = smooth_field(7, z, y, x, (4.0, 3.0, 3.0))
    np.testing.assert_allclose(smooth_field(7, z[::3], y[::2], x[::4], (4.0, 3.0, 3.0)), full[::3, ::2, ::4], atol=1e-5)
    big = smooth_field(3, np.arange(40.0), np.arange(64.0), np.arange(64.0), (2.0, 2.0, 2.0))
    assert abs(big.mean()) < 0.1 and 0.85 < big.std() < 1.15


@pytest.mark.parametrize("kwargs", [dict(cohort="train"), dict(center="rectum"), dict(index=-1),
                                    dict(shape=(0, 8, 8)), dict(spacing_mm=(3.0, 0.0, 1.0))])
def test_bad_arguments_raise(kwargs):
    args = dict(index=0, seed=0) | kwargs
    with pytest.raises(ValueError):
        phantom_case(**args)


def test_data_source_registry():
    assert {"phantom", "manifest"} <= set(list_sources())
    cases = create_source("phantom", n=2, seed=0, cohort="pretrain", **SMOKE)
    assert [c.case_id for c in cases] == ["phantom-pretrain-0000", "phantom-pretrain-0001"]
    with pytest.raises(ValueError):
        register_source("phantom")(lambda **kw: [])
    with pytest.raises(KeyError):
        create_source("no-such-source")
