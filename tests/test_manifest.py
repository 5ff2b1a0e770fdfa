"""Manifest reader: the real PI-CAI sample, resampling onto the T2w grid, and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from taskalign.data.manifest import read_manifest

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "picai_sample"
needs_sample = pytest.mark.skipif(not (SAMPLE / "cases.csv").is_file(), reason="PI-CAI sample not present")


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    header = list(rows[0])
    path.write_text(",".join(header) + "\n" + "".join(",".join(r[h] for h in header) + "\n" for r in rows))
    return path


def _sample_row(case_id: str = "c1", **override) -> dict[str, str]:
    row = {"case_id": case_id, **{k: str(SAMPLE / f"{k}.nii.gz") for k in ("t2w", "dwi", "adc", "gland", "lesion")}}
    row.update(override)
    return row


@needs_sample
def test_reads_real_sample():
    (case,) = read_manifest(SAMPLE / "cases.csv")
    assert case.case_id == "picai_sample"
    assert case.image.shape == (3, 20, 256, 256) and case.image.dtype == np.float32
    assert case.spacing_mm == (3.0, 0.5, 0.5)
    gland = case.gland > 0
    assert case.gland.dtype == np.uint8 and set(np.unique(case.gland)) == {0, 1}
    assert set(np.unique(case.lesion)) == {0, 3}
    assert abs(case.sequence("adc")[gland].mean() - 1236) < 2          # README: 1236 (10⁻⁶ mm²/s)
    assert abs(case.sequence("t2w")[gland].mean() - 221) < 1
    assert abs(case.sequence("dwi")[case.lesion > 0].mean() - 24.4) < 0.1
    assert np.nonzero(gland.any(axis=(1, 2)))[0].tolist() == list(range(3, 16))  # slices 3-15
    assert case.label is None


@needs_sample
def test_resamples_other_grids_onto_t2w(tmp_path):
    t2w = sitk.ReadImage(str(SAMPLE / "t2w.nii.gz"))
    adc = sitk.ReadImage(str(SAMPLE / "adc.nii.gz"), sitk.sitkFloat32)
    coarse = sitk.Resample(adc, [128, 128, 20], sitk.Transform(), sitk.sitkLinear, t2w.GetOrigin(),
                           (1.0, 1.0, 3.0), t2w.GetDirection(), 0.0, sitk.sitkFloat32)
    sitk.WriteImage(coarse, str(tmp_path / "adc_coarse.nii.gz"))
    gland = sitk.ReadImage(str(SAMPLE / "gland.nii.gz"))
    shifted = sitk.Resample(gland, [256, 256, 20], sitk.Transform(), sitk.sitkNearestNeighbor,
                            t2w.GetOrigin(), (0.5, 0.5, 3.0), t2w.GetDirection(), 0, gland.GetPixelID())
    sitk.WriteImage(shifted, str(tmp_path / "gland_copy.nii.gz"))
    row = _sample_row(adc="adc_coarse.nii.gz", gland="gland_copy.nii.gz", label="1")
    csv_path = _write_csv(tmp_path / "m.csv", [row])
    (case,) = read_manifest(csv_path)
    (ref,) = read_manifest(SAMPLE / "cases.csv")
    assert case.image.shape == ref.image.shape and case.label == 1
    mask = ref.gland > 0
    assert abs(case.sequence("adc")[mask].mean() / ref.sequence("adc")[mask].mean() - 1) < 0.03
    np.testing.assert_array_equal(case.gland, ref.gland)


def test_missing_file_names_case_and_file(tmp_path):
    csv_path = _write_csv(tmp_path / "m.csv", [{"case_id": "p7", "t2w": "nope.nii.gz", "dwi": "a", "adc": "b"}])
    with pytest.raises(ValueError, match=r"case p7: t2w file .*nope\.nii\.gz does not exist"):
        read_manifest(csv_path)


def test_unreadable_file_names_case_and_file(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    csv_path = _write_csv(tmp_path / "m.csv", [{"case_id": "p8", "t2w": "bad.nii.gz", "dwi": "x", "adc": "y"}])
    with pytest.raises(ValueError, match=r"case p8: t2w file .*bad\.nii\.gz is unreadable"):
        read_manifest(csv_path)


def test_bad_manifests(tmp_path):
    with pytest.raises(ValueError, match="lacks columns"):
        read_manifest(_write_csv(tmp_path / "a.csv", [{"case_id": "a", "t2w": "x"}]))
    with pytest.raises(ValueError, match="duplicated"):
        read_manifest(_write_csv(tmp_path / "b.csv", [{"case_id": "a", "t2w": "x", "dwi": "y", "adc": "z"}] * 2))
    with pytest.raises(ValueError, match="does not exist"):
        read_manifest(tmp_path / "missing.csv")


@needs_sample
def test_bad_label_value(tmp_path):
    with pytest.raises(ValueError, match="label must be 0 or 1"):
        read_manifest(_write_csv(tmp_path / "m.csv", [_sample_row(label="yes")]))
