"""Every read error of every image is a problem of its case (data check and a study on a real
folder): truncated or corrupt gzip, a file that is not an image, an unreadable header, no read
permission. The other cases go on; a folder with no usable case is one clear error."""
from __future__ import annotations

import builtins
import dataclasses
import gzip
import json
import os

import numpy as np
import pytest

from real_folders import phantom_cases, read_rows
from taskalign.cli import main
from taskalign.data.real import read_folder
from taskalign.data.real.export import export_cases
from taskalign.study.cohort import build_cohort
from taskalign.study.config import preset


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _not_an_image(path):
    path.write_text("case,value\n1,2\n")


def _garbage_header(path):
    path.write_bytes(gzip.compress(np.random.default_rng(0).bytes(4096)))


BREAKS = {   # name -> (manifest column, how, words in the message)
    "truncated float image": ("t2w", _truncate, "truncated"),
    "truncated uint8 mask": ("gland", _truncate, "truncated"),          # SimpleITK alone reads zeros here
    "corrupt gzip": ("gland", _corrupt_middle, "corrupt"),
    "not an image": ("adc", _not_an_image, "not an image"),
    "unreadable header": ("dwi", _garbage_header, "unreadable"),
}


@pytest.fixture
def folder(tmp_path):
    cases = phantom_cases(7)
    return cases, export_cases(cases, tmp_path / "data", "manifest")


def _check(csv_path, capsys) -> tuple[int, dict]:
    status = main(["data", "check", str(csv_path), "--json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("what", BREAKS)
def test_read_error_is_a_problem_of_its_case(folder, capsys, what):
    cases, csv_path = folder
    column, how, words = BREAKS[what]
    broken = csv_path.parent / read_rows(csv_path)[0][column]
    how(broken)
    status, report = _check(csv_path, capsys)
    assert status == 1 and len(report["cases"]) == 6
    (problem,) = report["problems"]
    assert problem["case"] == cases[0].case_id and problem["kind"] == "unreadable_file"
    assert problem["file"] == str(broken) and words in problem["message"] and column in problem["message"]
    cfg = dataclasses.replace(preset("smoke").data, source="real", path=str(csv_path), layout="manifest")
    cohort = build_cohort(cfg)                                  # a study on the folder: excluded, the rest go on
    assert [(e["case"], e["kind"]) for e in cohort.excluded] == [(cases[0].case_id, "unreadable_file")]
    assert len(cohort.train + cohort.val + cohort.test) == 6


def test_size_check_finds_truncation_without_reading_the_stream(folder):
    cases, csv_path = folder
    _truncate(csv_path.parent / read_rows(csv_path)[2]["lesion"])
    result = read_folder(csv_path, check_gzip="size")
    assert [(p.case, p.kind) for p in result.problems] == [(cases[2].case_id, "unreadable_file")]
    assert "truncated" in result.problems[0].message


def test_permission_denied_is_a_problem_of_its_case(folder, capsys, monkeypatch):
    cases, csv_path = folder
    locked = csv_path.parent / read_rows(csv_path)[1]["adc"]
    if os.geteuid() != 0:
        locked.chmod(0)
    else:                                        # root reads any file: refuse this one the way the OS would
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if str(file) == str(locked):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)
        monkeypatch.setattr(builtins, "open", refusing_open)
    status, report = _check(csv_path, capsys)
    assert status == 1 and len(report["cases"]) == 6
    (problem,) = report["problems"]
    assert problem["case"] == cases[1].case_id and "Permission denied" in problem["message"]
    assert "read access" in problem["message"]


def test_folder_with_no_usable_case_is_one_clear_error(folder, capsys):
    cases, csv_path = folder
    for row in read_rows(csv_path):
        _truncate(csv_path.parent / row["t2w"])
    status, report = _check(csv_path, capsys)
    assert status == 1 and report["cases"] == [] and len(report["problems"]) == 7
    assert report["error"].startswith(f"no usable case in {csv_path}: every one of its 7 entries")
    assert main(["data", "check", str(csv_path)]) == 1
    assert capsys.readouterr().err.count("error: no usable case") == 1
    cfg = dataclasses.replace(preset("smoke").data, source="real", path=str(csv_path), layout="manifest")
    with pytest.raises(ValueError, match="no usable case in .*unreadable_file.*taskalign data check"):
        build_cohort(cfg)
