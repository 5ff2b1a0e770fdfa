"""`taskalign data check`: each problem kind is named with its case, the rest stay usable, the
exit status says whether every case is usable; the real PI-CAI sample checks clean."""
from __future__ import annotations

import json

import pytest

from real_folders import KINDS, SAMPLE, broken_folder
from taskalign.cli import main
from taskalign.data.real import PROBLEM_KINDS, read_folder

needs_sample = pytest.mark.skipif(not (SAMPLE / "cases.csv").is_file(), reason="PI-CAI sample not present")


def _check_json(path, capsys, *extra) -> tuple[int, dict]:
    status = main(["data", "check", str(path), "--json", *extra])
    return status, json.loads(capsys.readouterr().out)


@needs_sample
def test_real_sample_checks_clean(capsys):
    status, report = _check_json(SAMPLE / "cases.csv", capsys)
    assert status == 0 and report["problems"] == []
    (case,) = report["cases"]
    assert case == {"id": "picai_sample", "shape": [20, 256, 256], "spacing": [3.0, 0.5, 0.5],
                    "labels": ["gland", "lesion"]}
    assert main(["data", "check", str(SAMPLE / "cases.csv")]) == 0
    table = capsys.readouterr().out
    assert "picai_sample" in table and "20 × 256 × 256" in table and "no problems found" in table


@pytest.mark.parametrize("kind", KINDS)
def test_each_problem_kind_is_named(tmp_path, capsys, kind):
    csv_path, broken = broken_folder(tmp_path, n_good=2, kinds=(kind,))
    status, report = _check_json(csv_path, capsys)
    assert status == 1
    found = {(p["case"], p["kind"]) for p in report["problems"]}
    assert (broken[kind], kind) in found
    assert all(p["case"] == broken[kind] for p in report["problems"])      # nothing else is blamed
    assert len(report["cases"]) == 2 and broken[kind] not in {c["id"] for c in report["cases"]}
    if kind != "duplicate_id":
        problem = next(p for p in report["problems"] if p["kind"] == kind)
        assert problem["file"].endswith(".nii.gz") and broken[kind] in problem["file"]
    main(["data", "check", str(csv_path)])
    text = capsys.readouterr().out
    assert f"problem: case {broken[kind]}: {kind}:" in text


def test_all_kinds_at_once_keep_the_good_cases(tmp_path):
    csv_path, broken = broken_folder(tmp_path, n_good=3)
    result = read_folder(csv_path)
    assert len(result.cases) == 3
    assert {(p.case, p.kind) for p in result.problems} >= {(case, kind) for kind, case in broken.items()}
    assert {e["case"] for e in result.excluded} == set(broken.values())
    assert set(KINDS) <= set(PROBLEM_KINDS)


def test_row_without_id_is_reported_not_fatal(tmp_path, capsys):
    csv_path, _ = broken_folder(tmp_path, n_good=1, kinds=())
    text = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(text + ["," + text[1].split(",", 1)[1]]) + "\n")
    status, report = _check_json(csv_path, capsys)
    assert status == 1 and len(report["cases"]) == 1
    assert [(p["case"], p["kind"]) for p in report["problems"]] == [("<line 3>", "bad_entry")]


def test_structural_fault_exits_2(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("case_id,t2w\nx,y\n")
    status, report = _check_json(tmp_path / "m.csv", capsys)
    assert status == 2 and "lacks columns" in report["error"]


def test_msd_without_dwi_choice_is_refused(tmp_path, capsys):
    (tmp_path / "dataset.json").write_text("{}")
    status, report = _check_json(tmp_path, capsys)
    assert status == 2 and "dwi='zero'" in report["error"]
