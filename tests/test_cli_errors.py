"""The CLI's one error path: every bad input ends in one line `taskalign: error: …` naming the
problem, exit status 2 and no traceback; a bug keeps its traceback and says it is a bug."""
import errno

import numpy as np
import pytest

from taskalign import cli, files
from taskalign.cli import main
from taskalign.errors import UnknownName, WriteFailed
from fake_study import write_fake_study


def run(capsys, *argv) -> tuple[int, str]:
    """(exit status, stderr) of `taskalign ARGV`; argparse's own exits count too."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_user_error(status: int, err: str, *words: str) -> str:
    """Exit 2, exactly one non-empty stderr line, the error prefix, each word named in it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("taskalign: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def features(tmp_path, a: np.ndarray, b: np.ndarray) -> tuple:
    np.save(tmp_path / "a.npy", a, allow_pickle=True)
    np.save(tmp_path / "b.npy", b, allow_pickle=True)
    return tmp_path / "a.npy", tmp_path / "b.npy"


# --- study ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, name, kind", [("--encoders", "nosuchnet", "encoder"),
                                              ("--tasks", "nosuchtask", "task")])
def test_unknown_registry_name(tmp_path, capsys, flag, name, kind):
    status, err = run(capsys, "study", "--preset", "smoke", "--out", tmp_path / "s", flag, name)
    line = assert_user_error(status, err, name, f"unknown {kind}", "registered:")
    assert "segmentation" in line or "provicnet" in line          # the registered names are listed
    assert not (tmp_path / "s").exists()                            # refused before any work


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert_user_error(*run(capsys, "study", "--preset", "smoke", "--out", tmp_path / "f"), "is a file", "--out")


def test_random_bytes_weights_are_refused(tmp_path, capsys):
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).integers(1, 127, 512, dtype=np.uint8).tobytes())
    status, err = run(capsys, "study", "--preset", "smoke", "--out", tmp_path / "s",
                      "--weights", f"profound_conv={path}")
    assert_user_error(status, err, str(path), "not a readable")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv, words", [
    (("--seeds", "0"), ("--seeds", "'0'", ">= 1")),
    (("--seeds", "-2"), ("--seeds", ">= 1")),
    (("--seeds", "two"), ("--seeds", "'two'")),
    (("--preset", "huge"), ("--preset", "huge", "smoke")),
    (("--backend", "slurm"), ("--backend", "slurm", "ray")),
    (("--data", "x.csv", "--layout", "nifti"), ("--layout", "nifti", "picai")),
    (("--layout", "msd"), ("--data",)),
    (("--data", "MISSING.csv"), ("--data", "MISSING.csv", "does not exist")),
])
def test_bad_study_arguments(tmp_path, capsys, argv, words):
    assert_user_error(*run(capsys, "study", "--out", tmp_path / "s", *argv), *words)


# --- report, gap, data check, checkpoint --------------------------------------------------------

def test_report_on_a_folder_that_is_not_a_study(tmp_path, capsys):
    assert_user_error(*run(capsys, "report", tmp_path), "config.json", str(tmp_path))


def test_gap_on_a_missing_csv(tmp_path, capsys):
    status, err = run(capsys, "gap", "--data", tmp_path / "MISSING.csv", "--out", tmp_path / "g")
    assert_user_error(status, err, "MISSING.csv", "does not exist")


@pytest.mark.parametrize("flag", ["--permutations", "--phantom-cases", "--crops-per-case"])
def test_gap_counts_must_be_positive(tmp_path, capsys, flag):
    status, err = run(capsys, "gap", "--data", tmp_path / "m.csv", "--out", tmp_path / "g", flag, "0")
    assert_user_error(status, err, flag, ">= 1")


def test_data_check_unknown_layout(tmp_path, capsys):
    assert_user_error(*run(capsys, "data", "check", tmp_path, "--layout", "nifti"), "nifti", "manifest")


@pytest.mark.parametrize("content, words", [(b"", ("lacks columns", "case_id")),
                                            (b"\x00\x01\xff\xfe\x80binary", ("not a text CSV",))])
def test_data_check_empty_or_binary_csv(tmp_path, capsys, content, words):
    (tmp_path / "m.csv").write_bytes(content)
    assert_user_error(*run(capsys, "data", "check", tmp_path / "m.csv"), str(tmp_path / "m.csv"), *words)


def test_checkpoint_inspect_random_bytes(tmp_path, capsys):
    (tmp_path / "w.pth").write_bytes(b"\x01\x02" * 100)
    assert_user_error(*run(capsys, "checkpoint", "inspect", tmp_path / "w.pth"), "w.pth", "not a readable")


# --- mmd --------------------------------------------------------------------------------------

def test_mmd_missing_files(tmp_path, capsys):
    assert_user_error(*run(capsys, "mmd", tmp_path / "a.npy", tmp_path / "b.npy"), "a.npy", "no such file")


def test_mmd_object_arrays(tmp_path, capsys):
    a, b = features(tmp_path, np.array([{"x": 1}, None], dtype=object), np.zeros((3, 2)))
    assert_user_error(*run(capsys, "mmd", a, b), "a.npy", "cannot read")


def test_mmd_nan_rows(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(20, 4))
    y = x.copy()
    y[[3, 11]] = np.nan
    a, b = features(tmp_path, x, y)
    assert_user_error(*run(capsys, "mmd", a, b), "b.npy", "NaN", "3, 11")


def test_mmd_one_row_is_too_few(tmp_path, capsys):
    a, b = features(tmp_path, np.zeros((1, 4)), np.ones((6, 4)))
    assert_user_error(*run(capsys, "mmd", a, b), "at least 2 rows")


def test_mmd_dimension_mismatch(tmp_path, capsys):
    a, b = features(tmp_path, np.zeros((5, 4)), np.ones((6, 3)))
    assert_user_error(*run(capsys, "mmd", a, b), "4 features", "3")


@pytest.mark.parametrize("argv, words", [(("--bandwidth", "0"), ("--bandwidth", "> 0")),
                                         (("--bandwidth", "nan"), ("--bandwidth",)),
                                         (("--permutations", "-1"), ("--permutations", ">= 0"))])
def test_mmd_bad_numbers(tmp_path, capsys, argv, words):
    a, b = features(tmp_path, np.zeros((5, 4)), np.ones((6, 4)))
    assert_user_error(*run(capsys, "mmd", a, b, *argv), *words)


# --- the error path itself ------------------------------------------------------------------------

def test_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    write_fake_study(tmp_path / "study")

    def no_space(path, write):
        raise WriteFailed(errno.ENOSPC, f"cannot write {path}: No space left on device; free some space", str(path))

    monkeypatch.setattr(files, "atomic_write", no_space)
    assert_user_error(*run(capsys, "report", tmp_path / "study"), "No space left", "cannot write")


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    with pytest.raises(UnknownName):
        main(["--debug", "study", "--preset", "smoke", "--out", str(tmp_path / "s"), "--tasks", "nosuchtask"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(UnknownName):
        main(["study", "--preset", "smoke", "--out", str(tmp_path / "s"), "--tasks", "nosuchtask"])


def test_a_bug_keeps_its_traceback_and_says_so(tmp_path, capsys, monkeypatch):
    def broken(args):
        return {}["no such key"]          # a KeyError that is no user's mistake

    monkeypatch.setattr(cli, "run_report_command", broken)
    status, err = run(capsys, "report", tmp_path)
    assert status == 1 and "Traceback" in err and "a bug" in err
