"""Real folders as their owners write them: the same phantom volumes written in other groups'
conventions (ProFound's CSVs, 0/255 and float masks, clinical scores, DICOM series) read into the
same Case values as the canonical manifest; every convention that cannot be read is a named
problem or a clear error."""
from __future__ import annotations

import json

import numpy as np
import pytest

from real_folders import (SAMPLE, phantom_cases, profound_classification_csv, profound_segmentation_csv, read_rows,
                          rewrite_mask, write_rows)
from taskalign.cli import build_parser, main, study_config
from taskalign.data.real import read_folder
from taskalign.data.real.export import export_cases, export_dicom
from taskalign.data.real.folder import reader_options

needs_sample = pytest.mark.skipif(not (SAMPLE / "cases.csv").is_file(), reason="PI-CAI sample not present")


def assert_same_cases(cases, reference, masks=("gland", "zones", "lesion"), label=True) -> None:
    assert [c.case_id for c in cases] == [r.case_id for r in reference]
    for case, ref in zip(cases, reference):
        np.testing.assert_array_equal(case.image, ref.image)
        assert case.spacing_mm == pytest.approx(ref.spacing_mm, abs=1e-5)   # DICOM: from slice positions
        np.testing.assert_allclose(case.meta["origin_xyz"], ref.meta["origin_xyz"], atol=1e-4)
        np.testing.assert_allclose(case.meta["direction"], ref.meta["direction"], atol=1e-6)
        for m in masks:
            np.testing.assert_array_equal(getattr(case, m), getattr(ref, m))
            assert getattr(case, m).dtype == np.uint8
        if label:
            assert case.label == ref.label


@pytest.fixture
def folder(tmp_path):
    """(cases, canonical manifest CSV, its cases as read)."""
    cases = phantom_cases(4)                       # PI-RADS 5, 5, 5, 4
    csv_path = export_cases(cases, tmp_path, "manifest")
    canonical = read_folder(csv_path)
    assert canonical.problems == []
    return cases, csv_path, canonical.cases


def test_profound_segmentation_csv_reads_like_the_manifest(folder):
    cases, csv_path, reference = folder
    result = read_folder(profound_segmentation_csv(csv_path))
    assert result.problems == []
    assert_same_cases(result.cases, reference, masks=("gland", "lesion"), label=False)
    notes = "\n".join(result.notes)
    assert "gland=prostate (alias)" in notes and "case ids are the T2w file's folder name" in notes
    assert "gland stored as {0, 255}: read as {0, 1} (4 of 4 case(s))" in notes     # once per folder


def test_profound_classification_csv_with_a_label_rule(folder):
    cases, csv_path, reference = folder
    cls = profound_classification_csv(csv_path, cases)
    unlabelled = read_folder(cls)
    assert all(c.label is None for c in unlabelled.cases)
    assert any("--label-rule" in n and "pirads" in n for n in unlabelled.notes)
    for rule, column in (("pirads>=5", "pirads"), ("likert>=5", "likert")):
        result = read_folder(cls, label_rule=rule)
        assert result.problems == [] and f"from column '{column}'" in "\n".join(result.notes)
        assert_same_cases(result.cases, reference, masks=(), label=False)
        scores = [int(r[column]) for r in read_rows(cls)]
        assert [c.label for c in result.cases] == [int(s >= 5) for s in scores] and len(set(scores)) == 2
    assert "dwi=highb (alias)" in result.notes[0] and "case_id=pid (alias)" in result.notes[0]


def test_score_label_column_without_a_rule_is_a_clear_error(folder):
    cases, csv_path, _ = folder
    rows = read_rows(csv_path)
    for row, case in zip(rows, cases):
        row["label"] = str(case.pirads)
    write_rows(csv_path, rows)
    with pytest.raises(ValueError, match=r"not a binary csPCa label.*--label-rule.*pirads>=4.*picai"):
        read_folder(csv_path)
    with pytest.raises(ValueError, match="no isup column"):
        read_folder(csv_path, label_rule="picai")
    with pytest.raises(ValueError, match="is not a rule"):
        read_folder(csv_path, label_rule="pirads is high")


def test_explicit_columns_override(folder):
    _, csv_path, reference = folder
    rows = [{"subject": r["case_id"], "T2": r["t2w"], "b1500": r["dwi"], "adcmap": r["adc"], "wg": r["gland"],
             "label": r["label"]} for r in read_rows(csv_path)]
    odd = write_rows(csv_path.parent / "odd.csv", rows)
    with pytest.raises(ValueError, match=r"lacks columns \['dwi', 'adc'\].*--columns"):
        read_folder(odd)
    result = read_folder(odd, columns={"case_id": "subject", "dwi": "b1500", "adc": "adcmap"})
    assert result.problems == [] and "dwi=b1500 (given)" in result.notes[0]
    assert_same_cases(result.cases, reference, masks=("gland",))
    with pytest.raises(ValueError, match="has no column 'nope'"):
        read_folder(odd, columns={"dwi": "nope"})


def test_float_and_binary_masks_read_into_their_classes(folder):
    _, csv_path, reference = folder
    rows = read_rows(csv_path)
    soft = lambda a: np.where(a > 0, 0.8, 0.0) + 0.1 * (np.arange(a.size).reshape(a.shape) % 3 == 0)  # noqa: E731
    rewrite_mask(csv_path.parent / rows[0]["gland"], soft)                        # values 0, 0.1, 0.8, 0.9
    rewrite_mask(csv_path.parent / rows[1]["lesion"], lambda a: (a > 0).astype(np.uint16) * 1000)
    result = read_folder(csv_path)
    assert result.problems == []
    np.testing.assert_array_equal(result.cases[0].gland, reference[0].gland)
    np.testing.assert_array_equal(result.cases[1].lesion, (reference[1].lesion > 0).astype(np.uint8))
    assert any("thresholded at half the maximum (1 of 4" in n for n in result.notes)


@pytest.mark.parametrize("mask, change, says", [
    ("zones", lambda a: a.astype(np.float32) * 0.7, "zones mask must hold class numbers"),
    ("zones", lambda a: np.where(a == 2, 9, a).astype(a.dtype), "zones holds values [9] outside its classes"),
    ("lesion", lambda a: ((a > 0) * (np.arange(a.size).reshape(a.shape) % 3 + 6)).astype(np.uint8),
     "lesion mask holds labels [0, 6, 7, 8]"),
    ("gland", lambda a: a.astype(np.int16) - 1, "negative values"),
])
def test_masks_that_cannot_be_read_name_their_values(folder, mask, change, says):
    cases, csv_path, _ = folder
    rewrite_mask(csv_path.parent / read_rows(csv_path)[0][mask], change)
    result = read_folder(csv_path)
    assert len(result.cases) == 3
    (problem,) = result.problems
    assert problem.case == cases[0].case_id and problem.kind == "label_values" and says in problem.message


@needs_sample
def test_real_sample_still_reads_clean_and_keeps_its_isup_grade():
    result = read_folder(SAMPLE / "cases.csv", check_gzip="crc")
    assert result.problems == [] and len(result.cases) == 1
    assert set(np.unique(result.cases[0].lesion)) == {0, 3}                 # one ISUP-3 lesion, kept
    assert not any("read as" in n or "thresholded" in n for n in result.notes)


def test_picai_label_rule_from_the_marksheet(tmp_path):
    cases = phantom_cases(3)
    export_cases(cases, tmp_path, "picai")
    isup = [int(c.lesion.max()) for c in cases]
    for rule, threshold in (("picai", 2), ("isup>=5", 5)):
        result = read_folder(tmp_path, label_rule=rule)
        assert [c.label for c in result.cases] == [int(g >= threshold) for g in isup]
        assert any("case_ISUP" in n and (rule != "picai" or "PI-CAI" in n) for n in result.notes)
    assert len({int(g >= 5) for g in isup}) == 2
    with pytest.raises(ValueError, match="--columns does not apply"):
        reader_options(None, tmp_path, columns={"dwi": "x"})


def test_data_check_cli_prints_the_mapping_and_takes_the_options(folder, capsys):
    cases, csv_path, _ = folder
    cls = profound_classification_csv(csv_path, cases)
    assert main(["data", "check", str(cls), "--json", "--label-rule", "pirads>=5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["notes"][0].startswith("columns: case_id=pid (alias)")
    assert all("label" in c["labels"] for c in report["cases"])
    assert main(["data", "check", str(cls), "--columns", "dwi=nope"]) == 2   # a user error: one line, exit 2
    assert "has no column 'nope'" in capsys.readouterr().err


def test_study_and_gap_take_the_reader_options(tmp_path):
    (tmp_path / "x.csv").write_text("case_id,t2w,dwi,adc\n")
    args = build_parser().parse_args(["study", "--out", str(tmp_path / "out"), "--preset", "smoke", "--data",
                                      str(tmp_path / "x.csv"),
                                      "--columns", "case_id=pid", "--label-rule", "pirads>=4", "--series", "t2w=T2"])
    data = study_config(args).data
    assert data.columns == (("case_id", "pid"),) and data.label_rule == "pirads>=4" and data.series == (("t2w", "T2"),)
    gap = build_parser().parse_args(["gap", "--data", "x.csv", "--out", str(tmp_path), "--label-rule", "isup>=2"])
    assert gap.label_rule == "isup>=2"


def test_new_data_options_at_their_defaults_keep_the_config_hash():
    import dataclasses
    import hashlib

    from taskalign.study.config import LATER_DATA_FIELDS, preset

    cfg = preset("smoke")
    d = cfg.to_dict()
    for key in LATER_DATA_FIELDS:
        del d["data"][key]
    old = hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:16]
    assert cfg.hash() == old
    changed = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, label_rule="pirads>=4"))
    assert changed.hash() != old


def test_label_rule_is_written_to_splits(tmp_path):
    import dataclasses

    from taskalign.study.cohort import build_cohort
    from taskalign.study.config import preset

    cases = phantom_cases(6)
    cls = profound_classification_csv(export_cases(cases, tmp_path, "manifest"), cases)
    cfg = dataclasses.replace(preset("smoke").data, source="real", path=str(cls), layout="manifest",
                              label_rule="pirads>=5")
    splits = build_cohort(cfg).splits(0)
    assert splits["label_rule"] == "pirads>=5"
    assert any("csPCa label = pirads>=5" in n for n in splits["notes"])


def _oblique_integer_cases(n: int):
    """Phantom cases with integer intensities (DICOM stores int16) on an oblique grid (20° about x)."""
    import dataclasses

    a = np.deg2rad(20.0)
    direction = (1.0, 0.0, 0.0, 0.0, np.cos(a), -np.sin(a), 0.0, np.sin(a), np.cos(a))
    return [dataclasses.replace(c, image=np.round(c.image), meta={**c.meta, "origin_xyz": (-30.0, -12.5, 40.0),
                                                                    "direction": direction})
            for c in phantom_cases(n)]


def test_dicom_series_folders_read_like_the_manifest(tmp_path):
    import locale

    encoding = locale.getpreferredencoding(False)
    cases = _oblique_integer_cases(2)
    reference = read_folder(export_cases(cases, tmp_path / "nifti", "manifest")).cases
    result = read_folder(export_dicom(cases, tmp_path / "dicom"))
    assert locale.getpreferredencoding(False) == encoding   # GDCM's "C" locale does not leak out
    assert result.problems == []
    assert_same_cases(result.cases, reference)
    assert result.cases[0].meta["direction"][5] == pytest.approx(-np.sin(np.deg2rad(20.0)), abs=1e-6)


def test_several_series_in_one_folder_need_a_choice(tmp_path):
    cases = _oblique_integer_cases(2)
    reference = read_folder(export_cases(cases, tmp_path / "nifti", "manifest")).cases
    csv_path = export_dicom(cases, tmp_path / "dicom", one_folder=True)
    result = read_folder(csv_path)
    assert result.cases == [] and {p.kind for p in result.problems} == {"ambiguous_series"}
    assert "holds 3 DICOM series" in result.problems[0].message and "--series t2w=" in result.problems[0].message
    by_description = read_folder(csv_path, series={"t2w": "T2W", "dwi": "dwi", "adc": "adc"})
    assert by_description.problems == []
    assert_same_cases(by_description.cases, reference)
    from taskalign.data.real.dicom import list_series

    uids = {s.description: s.uid for s in list_series(csv_path.parent / read_rows(csv_path)[0]["t2w"])}
    by_uid = read_folder(csv_path, series={"t2w": uids["t2w"], "dwi": uids["dwi"], "adc": uids["adc"]})
    assert [p.case for p in by_uid.problems] == [cases[1].case_id]        # the UIDs are those of case 0
    np.testing.assert_array_equal(by_uid.cases[0].image, reference[0].image)
    wrong = read_folder(csv_path, series={"t2w": "flair", "dwi": "dwi", "adc": "adc"})
    assert {p.kind for p in wrong.problems} == {"missing_file"} and "'flair' matches none" in wrong.problems[0].message


def test_empty_dicom_folder_is_a_problem_of_its_case(tmp_path):
    cases = _oblique_integer_cases(2)
    csv_path = export_dicom(cases, tmp_path)
    adc = tmp_path / read_rows(csv_path)[1]["adc"]
    for file in adc.iterdir():
        file.unlink()
    result = read_folder(csv_path)
    assert len(result.cases) == 1
    (problem,) = result.problems
    assert problem.case == cases[1].case_id and "holds no DICOM series" in problem.message


def test_dicom_case_is_cached_by_the_content_of_its_series(tmp_path):
    from taskalign.data.real.cache import PreprocessCache

    cases = _oblique_integer_cases(1)
    csv_path = export_dicom(cases, tmp_path / "dicom")
    cache = PreprocessCache(tmp_path / "cache")
    first = read_folder(csv_path, cache=cache).cases[0]
    again = read_folder(csv_path, cache=cache).cases[0]
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first.image, again.image)
    slice_file = sorted((tmp_path / "dicom" / read_rows(csv_path)[0]["dwi"]).iterdir())[0]
    slice_file.write_bytes(slice_file.read_bytes() + b"\0")                    # another content: another key
    read_folder(csv_path, cache=cache)
    assert (cache.hits, cache.misses) == (1, 2)


def test_case_folder_of_series_folders_with_a_choice(tmp_path):
    """Every image cell names the case's folder; the series live in subfolders (t2w/, dwi/, adc/)."""
    cases = _oblique_integer_cases(2)
    reference = read_folder(export_cases(cases, tmp_path / "nifti", "manifest")).cases
    csv_path = export_dicom(cases, tmp_path / "dicom")
    rows = read_rows(csv_path)
    for row in rows:
        row["t2w"] = row["dwi"] = row["adc"] = row["t2w"].rsplit("/", 1)[0]       # cases/<id>
    write_rows(csv_path, rows)
    assert {p.kind for p in read_folder(csv_path).problems} == {"ambiguous_series"}
    result = read_folder(csv_path, series={"t2w": "t2w", "dwi": "dwi", "adc": "adc"})
    assert result.problems == []
    assert_same_cases(result.cases, reference)


def test_report_states_the_label_rule(tmp_path):
    from taskalign.report.html import _overview
    from taskalign.report.load import StudyData

    splits = {"data_seed": 0, "train": ["a"], "val": ["b"], "test": ["c"], "pretrain": [], "label_rule": "pirads>=4"}
    text = _overview(StudyData(tmp_path, {}, {}, [], splits=splits))
    assert "csPCa label from the rule <code>pirads&gt;=4</code>" in text
    plain = _overview(StudyData(tmp_path, {}, {}, [], splits={**splits, "label_rule": None}))
    assert "label from the rule" not in plain
