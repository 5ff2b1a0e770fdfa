"""The transfer matrix: a tiny matrix end to end (sources made, fine-tuned, aligned, analysed),
its rows equal to the run folders' records, resumption without recomputation, a changed config
refused, and the analysis (within-target Spearman, diagonal ranks) against direct computations."""
import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from taskalign.experiments.transfer_matrix import matrix_preset, run_matrix
from taskalign.experiments.transfer_matrix.analysis import diagonal, seed_means, within_target
from taskalign.experiments.transfer_matrix.units import MatrixConfigMismatch, plan, runs_dir


@pytest.fixture(scope="module")
def smoke_matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    mcfg = matrix_preset("smoke")
    summary = run_matrix(out, mcfg, workers=1, log=lambda m: None)
    return out, mcfg, summary


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_source_is_fine_tuned_on_every_target(smoke_matrix):
    out, mcfg, summary = smoke_matrix
    assert mcfg.sources == ("none", "ssl-100", "sup-classification")
    assert summary["rows"] == summary["expected_rows"] == len(mcfg.sources) * len(mcfg.targets)
    for source in ("ssl-100", "sup-classification"):
        card = json.loads((out / "sources" / "provicnet" / source / "card.json").read_text())
        assert card["steps"] >= 1
    matrix = _read(out / "matrix_gain_provicnet.csv")
    assert [r["source"] for r in matrix] == list(mcfg.sources)
    assert all(float(r[t]) == 0.0 for r in matrix if r["source"] == "none" for t in mcfg.targets)


def test_rows_are_the_run_folders_records(smoke_matrix):
    out, mcfg, _ = smoke_matrix
    for row in _read(out / "matrix.csv"):
        if row["source"] == "none":
            continue
        cell = runs_dir(out, row["source"]) / "cells" / "provicnet" / row["target"] / f"n{mcfg.n_train}" / "seed0"
        scratch = runs_dir(out, "none") / "cells" / "provicnet-scratch" / row["target"] / f"n{mcfg.n_train}" / "seed0"
        ft = json.loads((cell / "metrics.json").read_text())
        sc = json.loads((scratch / "metrics.json").read_text())
        align = json.loads((cell / "alignment.json").read_text())
        sign = 1 if ft["higher_is_better"] else -1
        assert float(row["gain"]) == pytest.approx(sign * (ft["value"] - sc["value"]), rel=1e-5, abs=1e-9)
        assert float(row["d2p"]) == pytest.approx(align["d2p"]["mmd2"], rel=1e-5, abs=1e-12)
        assert ft["train_cases"] == sc["train_cases"]   # paired: the same labelled cases


def test_a_finished_matrix_resumes_without_recomputing(smoke_matrix):
    out, mcfg, _ = smoke_matrix
    records = sorted(out.glob("runs/**/metrics.json")) + sorted(out.glob("sources/*/*/card.json"))
    before = {p: p.stat().st_mtime_ns for p in records}
    assert all(u.done(out, mcfg) for stage in plan(mcfg) for u in stage)
    run_matrix(out, mcfg, workers=1, log=lambda m: None)
    assert {p: p.stat().st_mtime_ns for p in records} == before


def test_a_changed_config_is_refused(smoke_matrix):
    out, mcfg, _ = smoke_matrix
    with pytest.raises(MatrixConfigMismatch):
        run_matrix(out, matrix_preset("smoke", finetune_steps=mcfg.finetune_steps + 1), workers=1, log=lambda m: None)


def _rows(gains, d2ps, target="t", seeds=(0,)):
    return [{"encoder": "e", "source": s, "target": target, "seed": seed, "gain": g + 0.01 * seed, "d2p": d}
            for seed in seeds for s, g, d in zip(gains, gains.values(), d2ps)]


def test_within_target_spearman_is_the_direct_one_over_seed_means():
    gains = {"none": 0.0, "ssl-10": 0.1, "ssl-100": 0.3, "sup-t": 0.5, "sup-u": 0.2}
    d2ps = [math.nan, 0.4, 0.25, 0.1, 0.3]
    rows = _rows(gains, d2ps, seeds=(0, 1))
    mcfg = matrix_preset("smoke", targets=("t",), doses=(0.1, 1.0), supervised=("t", "u"), encoders=("e",),
                         permutations=500, bootstrap=200)
    got = [w for w in within_target(rows, mcfg) if w["predictor"] == "d2p"][0]
    means = seed_means(rows, "gain")
    x = [d for s, d in zip(gains, d2ps) if s != "none"]
    y = [means[("e", s, "t")] for s in gains if s != "none"]
    assert got["n_sources"] == 4
    assert got["rho"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert got["rho"] == pytest.approx(-1.0)
    assert got["p_value"] == pytest.approx(2 / 24, abs=0.05)   # exact two-sided p of rho = -1 at n = 4


def test_diagonal_ranks():
    mcfg = matrix_preset("smoke", targets=("t",), doses=(1.0,), supervised=("t", "u"), encoders=("e",))
    rows = _rows({"none": 0.0, "ssl-100": 0.3, "sup-t": 0.2, "sup-u": 0.1}, [math.nan, 0.5, 0.1, 0.3])
    (d,) = diagonal(rows, mcfg)
    assert (d["rank_by_d2p"], d["rank_by_gain"], d["n_sources"]) == (1, 2, 3)
    assert (d["smallest_d2p"], d["largest_gain"]) == ("sup-t", "ssl-100")
    assert np.isfinite(d["rank_by_d2p"])


def test_advise_trust_signs_each_estimator_and_ranks_against_the_gain(tmp_path):
    from taskalign.advise.scoring import ESTIMATORS
    from taskalign.experiments.transfer_matrix.analysis import advise_trust

    mcfg = matrix_preset("smoke", targets=("t",), doses=(1.0,), supervised=("t", "u"), encoders=("e",),
                         permutations=200, bootstrap=100)
    gains = {"none": 0.0, "ssl-100": 0.3, "sup-t": 0.2, "sup-u": 0.1}
    rows = _rows(gains, [math.nan, 0.5, 0.1, 0.3])
    logme_values = {"none": 1.0, "ssl-100": 4.0, "sup-t": 3.0, "sup-u": 2.0}     # same order as the gain
    drift_values = {"none": 9.0, "ssl-100": 1.0, "sup-t": 2.0, "sup-u": 3.0}     # smaller is better: same order
    scores = {s: {name: {"value": None} for name in ESTIMATORS} for s in gains}
    for s in gains:
        scores[s]["logme"]["value"] = logme_values[s]
        scores[s]["drift_proxy"]["value"] = drift_values[s]
        scores[s]["knn"]["value"] = -logme_values[s]                               # reversed order
    (tmp_path / "advise" / "e").mkdir(parents=True)
    (tmp_path / "advise" / "e" / "t.json").write_text(json.dumps({"scores": scores}))
    got = {r["estimator"]: r for r in advise_trust(tmp_path, rows, mcfg)}
    assert got["logme"]["rho"] == pytest.approx(1.0) and got["logme"]["n_sources"] == 4
    assert got["drift_proxy"]["rho"] == pytest.approx(1.0)
    assert got["knn"]["rho"] == pytest.approx(-1.0)
    assert got["h_score"]["n_sources"] == 0 and "rho" not in got["h_score"]
