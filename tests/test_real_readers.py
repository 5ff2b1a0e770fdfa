"""Real-data readers: the real PI-CAI sample, sequences on the T2w grid across spacings and
orientations, the three layouts round-tripping phantom cases, crops and resampling."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from real_folders import SAMPLE, phantom_cases
from taskalign.data.manifest import read_manifest
from taskalign.data.real import read_folder
from taskalign.data.real.export import export_cases
from taskalign.data.real.regrid import crop_case, resample_case

needs_sample = pytest.mark.skipif(not (SAMPLE / "cases.csv").is_file(), reason="PI-CAI sample not present")


@needs_sample
def test_real_sample_orientation_dtype_units_masks():
    (case,) = read_manifest(SAMPLE / "cases.csv")
    t2w = sitk.ReadImage(str(SAMPLE / "t2w.nii.gz"))
    assert sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(case.meta["direction"]) == "LPS"
    np.testing.assert_allclose(case.meta["direction"], t2w.GetDirection())
    np.testing.assert_allclose(case.meta["origin_xyz"], t2w.GetOrigin())
    assert case.image.dtype == np.float32 and case.image.shape == (3, 20, 256, 256)
    np.testing.assert_array_equal(case.sequence("t2w"), sitk.GetArrayFromImage(t2w).astype(np.float32))
    gland = case.gland > 0
    assert 1100 < case.sequence("adc")[gland].mean() < 1400        # 10⁻⁶ mm²/s, README: 1236
    assert case.gland.shape == case.lesion.shape == case.shape       # masks on the T2w grid
    assert case.gland.dtype == case.lesion.dtype == np.uint8
    assert case.meta["files"]["adc"].endswith("adc.nii.gz") and case.meta["absent_sequences"] == ()


def _put_bright(size_xyz, spacing, origin, direction, point_index, value=1000.0) -> sitk.Image:
    array = np.zeros(tuple(reversed(size_xyz)), np.float32)
    array[tuple(reversed(point_index))] = value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def _save_nibabel(image: sitk.Image, path) -> None:
    """Write an ITK (LPS) image with nibabel (RAS affine), to mix the two writers."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    flip = np.diag([-1.0, -1.0, 1.0])
    affine[:3, :3] = flip @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = flip @ np.array(image.GetOrigin())
    nib.save(nib.Nifti1Image(sitk.GetArrayFromImage(image).transpose(2, 1, 0), affine), str(path))


def test_bright_voxel_lands_on_one_index_in_every_channel(tmp_path):
    """A bright voxel at physical point P = (10, 8, 10) mm in each sequence and the mask, each
    file on its own spacing and orientation (flipped axes), two writers (SimpleITK, nibabel)."""
    t2w = _put_bright((20, 20, 10), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (10, 8, 5))
    dwi = _put_bright((10, 10, 10), (2.0, 2.0, 2.0), (16.0, 0.0, 0.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1), (3, 4, 5))
    adc = _put_bright((30, 30, 6), (0.5, 0.5, 4.0), (7.0, 10.0, 18.0), (1, 0, 0, 0, -1, 0, 0, 0, -1), (6, 4, 2))
    lesion = sitk.Cast(_put_bright((20, 20, 10), (1.0, 1.0, 2.0), (19.0, 19.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1),
                                   (9, 11, 5), value=1), sitk.sitkUInt8)     # x and y flipped
    for image in (t2w, dwi, adc, lesion):
        point = (10.0, 8.0, 10.0)
        assert np.allclose(image.TransformContinuousIndexToPhysicalPoint(
            image.TransformPhysicalPointToIndex(point)), point)
    sitk.WriteImage(t2w, str(tmp_path / "t2w.nii.gz"))
    _save_nibabel(dwi, tmp_path / "dwi.nii.gz")
    sitk.WriteImage(adc, str(tmp_path / "adc.mha"))
    sitk.WriteImage(lesion, str(tmp_path / "lesion.mha"))
    (tmp_path / "m.csv").write_text("case_id,t2w,dwi,adc,lesion\nc,t2w.nii.gz,dwi.nii.gz,adc.mha,lesion.mha\n")
    result = read_folder(tmp_path / "m.csv")
    assert result.problems == []
    (case,) = result.cases
    expected = (5, 8, 10)                                   # (z, y, x) index of P on the T2w grid
    for i in range(3):
        assert np.unravel_index(np.argmax(case.image[i]), case.shape) == expected, i
        assert case.image[i][expected] == pytest.approx(1000.0, rel=1e-4)
    assert np.argwhere(case.lesion > 0).tolist() == [list(expected)]


@pytest.mark.parametrize("layout", ["manifest", "picai", "msd"])
def test_export_round_trip(tmp_path, layout):
    cases = phantom_cases(3)
    path = export_cases(cases, tmp_path, layout)
    result = read_folder(path, layout, **({"dwi": "zero"} if layout == "msd" else {}))
    assert result.problems == [] and len(result.cases) == 3
    for src, back in zip(cases, result.cases):
        assert back.spacing_mm == pytest.approx(src.spacing_mm)
        kept = ("t2w", "adc") if layout == "msd" else ("t2w", "dwi", "adc")
        for seq in kept:
            np.testing.assert_allclose(back.sequence(seq), src.sequence(seq), rtol=0, atol=1e-4)
        masks = {"manifest": ("gland", "zones", "lesion"), "picai": ("gland", "lesion"), "msd": ("gland", "zones")}
        for m in masks[layout]:
            np.testing.assert_array_equal(getattr(back, m), getattr(src, m))
        assert back.label == (None if layout == "msd" else src.label)
    if layout == "msd":
        assert "zero-filled" in result.notes[0]
        assert all(not c.sequence("dwi").any() and c.meta["absent_sequences"] == ("dwi",) for c in result.cases)


def test_picai_marksheet_labels_and_missing_label_file(tmp_path):
    cases = phantom_cases(3)
    export_cases(cases, tmp_path, "picai")
    result = read_folder(tmp_path)                                  # detected: picai
    assert result.layout == "picai" and [c.meta["lesion_values"] for c in result.cases] == ["isup"] * 3
    with (tmp_path / "marksheet.csv").open() as fh:
        sheet = list(csv.DictReader(fh))
    assert [r["case_csPCa"] for r in sheet] == ["YES" if c.label else "NO" for c in cases]
    (tmp_path / "labels" / f"{sheet[1]['patient_id']}_{sheet[1]['study_id']}.nii.gz").unlink()
    sheet[2]["case_csPCa"] = "maybe"
    with (tmp_path / "marksheet.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet)
    result = read_folder(tmp_path)
    assert len(result.cases) == 1
    assert {p.kind for p in result.problems} == {"missing_file", "label_values"}


def test_msd_needs_an_explicit_dwi_choice_and_drop_is_stated(tmp_path):
    export_cases(phantom_cases(2), tmp_path, "msd")
    with pytest.raises(ValueError, match="no DWI"):
        read_folder(tmp_path)
    result = read_folder(tmp_path, dwi="drop")
    assert "dropped" in result.notes[0]
    assert all(c.meta["dropped_sequences"] == ("dwi",) for c in result.cases)
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert dataset["modality"] == {"0": "T2", "1": "ADC"}


def test_crop_is_voxel_exact_and_resample_onto_own_grid_is_identity():
    (case,) = phantom_cases(1)
    crop = crop_case(case, (4, 16, 16), center="image")
    np.testing.assert_array_equal(crop.image, case.image[:, 2:6, 8:24, 8:24])
    padded = crop_case(case, (10, 32, 32), center="image")          # one slice of zeros on each side
    np.testing.assert_array_equal(padded.image[:, 1:9], case.image)
    assert not padded.image[:, 0].any() and not padded.image[:, 9].any()
    same = resample_case(case, case.shape, case.spacing_mm, center="image")
    np.testing.assert_allclose(same.image, case.image, atol=1e-3)
    np.testing.assert_array_equal(same.lesion, case.lesion)


@needs_sample
def test_oblique_real_case_resampled_keeps_the_gland():
    """The real case is oblique (tilted about x); resampled to a coarse study grid around its gland,
    the gland volume is kept (≈ 35 cc, README) and the ADC units are unchanged."""
    (case,) = read_manifest(SAMPLE / "cases.csv")
    small = resample_case(case, (16, 48, 48), (3.0, 1.5, 1.5), center="gland")
    volume = lambda c: (c.gland > 0).sum() * np.prod(c.spacing_mm) / 1000  # noqa: E731
    assert volume(small) == pytest.approx(volume(case), rel=0.05)
    assert small.sequence("adc")[small.gland > 0].mean() == pytest.approx(
        case.sequence("adc")[case.gland > 0].mean(), rel=0.03)
    np.testing.assert_allclose(small.meta["direction"], case.meta["direction"])
