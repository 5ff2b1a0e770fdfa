"""`taskalign mmd A B`: file formats, output, and errors with a non-zero exit."""
import argparse
import json

import numpy as np
import pytest
import torch

from taskalign.align import mmd2
from taskalign.align.cli import add_mmd_parser, run_mmd
from taskalign.cli import main


def parse(*argv):
    parser = argparse.ArgumentParser(prog="taskalign")
    add_mmd_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["mmd", *map(str, argv)])


def status(*argv) -> int:
    """Exit status of `taskalign mmd ARGV` through the CLI's one error path."""
    return main(["mmd", *map(str, argv)])


def arrays(n_a=30, n_b=25, d=5, shift=0.5):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n_a, d)), rng.normal(size=(n_b, d)) + shift


def run_json(capsys, *argv):
    args = parse(*argv, "--json")
    assert args.func is run_mmd
    assert run_mmd(args) == 0
    return json.loads(capsys.readouterr().out)


def test_npy_json_output_matches_library(tmp_path, capsys):
    a, b = arrays()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = run_json(capsys, tmp_path / "a.npy", tmp_path / "b.npy", "--permutations", "200", "--seed", "3")
    assert {"mmd2", "bandwidth", "p_value", "n_x", "n_y", "kernel", "estimator"} <= set(out)
    want = mmd2(a, b, permutations=200, seed=3)
    assert out["mmd2"] == pytest.approx(want.mmd2) and out["p_value"] == want.p_value
    assert (out["n_x"], out["n_y"], out["kernel"], out["estimator"]) == (30, 25, "rbf", "unbiased-u")
    assert out["bandwidth"] == pytest.approx(want.bandwidth)


def test_pt_and_npz_paired_with_given_bandwidths(tmp_path, capsys):
    a, b = arrays(20, 20)
    torch.save(torch.from_numpy(a), tmp_path / "a.pt")
    np.savez(tmp_path / "b.npz", feats=b)
    out = run_json(capsys, tmp_path / "a.pt", tmp_path / "b.npz", "--paired", "--bandwidth", "1", "2",
                   "--permutations", "50")
    assert out["estimator"] == "paired-u" and out["bandwidth"] == [1.0, 2.0]
    assert out["mmd2"] == pytest.approx(mmd2(a, b, estimator="paired-u", bandwidth=[1.0, 2.0]).mmd2)


def test_linear_kernel_biased_and_dict_pt_with_key(tmp_path, capsys):
    a, b = arrays()
    torch.save({"pooled": torch.from_numpy(a), "tokens": torch.zeros(3, 5)}, tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", b)
    out = run_json(capsys, tmp_path / "a.pt", tmp_path / "b.npy", "--key", "pooled", "--kernel", "linear",
                   "--biased", "--permutations", "0")
    assert out["bandwidth"] is None and out["p_value"] is None and out["estimator"] == "biased-v"
    assert out["mmd2"] == pytest.approx(float(((a.mean(0) - b.mean(0)) ** 2).sum()), rel=1e-10)


def test_human_readable_output(tmp_path, capsys):
    a, b = arrays()
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert run_mmd(parse(tmp_path / "a.npy", tmp_path / "b.npy", "--permutations", "100")) == 0
    text = capsys.readouterr().out
    assert "MMD² =" in text and "bandwidth σ =" in text and "median heuristic" in text and "p-value =" in text


def _error(tmp_path, capsys, a, b, *extra, names=("a.npy", "b.npy")):
    for name, arr in zip(names, (a, b)):
        np.save(tmp_path / name, arr) if name.endswith(".npy") else np.savez(tmp_path / name, **arr)
    assert status(tmp_path / names[0], tmp_path / names[1], *extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_mismatched_dimensions(tmp_path, capsys):
    a, b = arrays()
    err = _error(tmp_path, capsys, a, b[:, :3])
    assert "5 features per row" in err and "3" in err and "b.npy" in err


def test_nan_rows_are_named(tmp_path, capsys):
    a, b = arrays()
    b[[4, 17], 2] = np.nan
    b[9, 0] = np.inf
    err = _error(tmp_path, capsys, a, b)
    assert "b.npy" in err and "3 row(s): 4, 9, 17" in err


def test_empty_input(tmp_path, capsys):
    a, b = arrays()
    assert "empty" in _error(tmp_path, capsys, a, np.zeros((0, 5)))


def test_paired_needs_equal_rows_and_npz_needs_key(tmp_path, capsys):
    a, b = arrays(30, 25)
    assert "one row per pair" in _error(tmp_path, capsys, a, b, "--paired")
    err = _error(tmp_path, capsys, a, {"x": b, "y": b}, names=("a.npy", "b.npz"))
    assert "--key" in err and "['x', 'y']" in err


def test_missing_and_unsupported_files(tmp_path, capsys):
    assert status(tmp_path / "nope.npy", tmp_path / "nope.npy") == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "a.csv").write_text("1,2\n")
    assert status(tmp_path / "a.csv", tmp_path / "a.csv") == 2
    assert "unsupported file type" in capsys.readouterr().err


def test_object_arrays_are_refused(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "b.npy", np.zeros((3, 2)))
    assert status(tmp_path / "a.npy", tmp_path / "b.npy") == 2
    assert "cannot read" in capsys.readouterr().err
