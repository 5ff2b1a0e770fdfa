"""Transferability estimators of `taskalign.advise` against direct computations on tiny inputs,
their invariances, and their errors; then `taskalign advise` end to end on a tiny phantom."""
import numpy as np
import pytest

from taskalign.advise import (drift_proxy, h_score, knn_score, linear_probe_score, log_evidence, logme,
                              max_evidence)


def direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """log N(y; 0, α⁻¹ F Fᵀ + β⁻¹ I) for arrays of (α, β): the evidence without any identity."""
    n = len(y)
    cov = np.einsum("k,ij->kij", 1 / alpha, f @ f.T) + np.einsum("k,ij->kij", 1 / beta, np.eye(n))
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("i,kij,j->k", y, np.linalg.inv(cov), y)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + quad)


def brute_force_max(f: np.ndarray, y: np.ndarray, rounds: int = 4, points: int = 60) -> float:
    """max over (α, β) of the direct evidence on log grids, each round zoomed around the best."""
    lo, hi = np.array([-6.0, -6.0]), np.array([6.0, 6.0])
    best = -np.inf
    for _ in range(rounds):
        a, b = np.meshgrid(np.linspace(lo[0], hi[0], points), np.linspace(lo[1], hi[1], points))
        values = direct_log_evidence(f, y, 10 ** a.ravel(), 10 ** b.ravel())
        k = int(np.argmax(values))
        best = max(best, float(values[k]))
        centre, step = np.array([a.ravel()[k], b.ravel()[k]]), (hi - lo) / (points - 1)
        lo, hi = centre - 2 * step, centre + 2 * step
    return best / len(y)


@pytest.mark.parametrize("n,d", [(8, 12), (20, 3)])
def test_logme_svd_evidence_matches_the_direct_formula(n, d):
    rng = np.random.default_rng(n)
    f, y = rng.normal(size=(n, d)), rng.normal(size=n)
    for alpha, beta in [(0.1, 3.0), (2.0, 0.5), (30.0, 30.0)]:
        direct = direct_log_evidence(f, y, np.array([alpha]), np.array([beta]))[0]
        assert log_evidence(f, y, alpha, beta) == pytest.approx(direct, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("n,d", [(8, 12), (20, 3), (15, 15)])
def test_logme_fixed_point_reaches_the_brute_force_maximum(n, d):
    rng = np.random.default_rng(d)
    f = rng.normal(size=(n, d))
    y = f[:, 0] * 0.8 + rng.normal(scale=0.5, size=n)
    value, alpha, beta = max_evidence(f, y)
    grid = brute_force_max(f, y)
    assert value >= grid - 1e-9              # no grid point beats the fixed point
    assert value - grid < 1e-4               # and the grid gets as close as its resolution allows


def test_logme_averages_one_hot_columns():
    rng = np.random.default_rng(1)
    f, labels = rng.normal(size=(12, 4)), np.array([0, 1, 2] * 4)
    columns = [max_evidence(f, (labels == c).astype(float))[0] for c in range(3)]
    assert logme(f, labels) == pytest.approx(np.mean(columns))
    targets = rng.normal(size=(12, 2))
    assert logme(f, targets, regression=True) == pytest.approx(
        np.mean([max_evidence(f, targets[:, j])[0] for j in range(2)]))


def test_h_score_matches_explicit_class_means():
    rng = np.random.default_rng(2)
    f, labels = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    f[labels == 1] += 1.5
    mu = f.mean(0)
    between = sum((labels == c).mean() * np.outer(f[labels == c].mean(0) - mu, f[labels == c].mean(0) - mu)
                  for c in np.unique(labels))
    expected = np.trace(np.linalg.inv(np.cov(f.T, bias=True)) @ between)
    assert h_score(f, labels) == pytest.approx(expected, rel=1e-9)


def test_h_score_uses_a_pseudo_inverse_when_n_is_below_d():
    rng = np.random.default_rng(3)
    f, labels = rng.normal(size=(6, 10)), np.array([0, 0, 0, 1, 1, 1])
    assert np.isfinite(h_score(f, labels))


def test_invariances_shift_and_relabelling():
    rng = np.random.default_rng(4)
    f, labels = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    f[labels == 2, 0] += 2.0
    shift = rng.normal(size=5) * 10
    assert h_score(f + shift, labels) == pytest.approx(h_score(f, labels), rel=1e-8)
    renamed = np.array([7, -1, 3])[labels]                  # class ids permuted and renamed
    assert h_score(f, renamed) == pytest.approx(h_score(f, labels), rel=1e-12)
    assert logme(f, renamed) == pytest.approx(logme(f, labels), rel=1e-12)


def test_scores_are_larger_for_features_that_carry_the_label():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 80)
    noise = rng.normal(size=(80, 6))
    signal = noise.copy()
    signal[:, 0] += 3.0 * labels
    assert logme(signal, labels) > logme(noise, labels) + 0.1
    assert h_score(signal, labels) > h_score(noise, labels) + 0.5
    assert linear_probe_score(signal, labels) > 0.9 > 0.7 > linear_probe_score(noise, labels)
    assert knn_score(signal, labels) > 0.8 > knn_score(noise, labels)
    targets = noise[:, :2] @ np.array([[1.0, 0.0], [0.5, 2.0]])
    assert logme(noise, targets, regression=True) > logme(rng.normal(size=(80, 6)), targets, regression=True)
    assert linear_probe_score(noise, targets, regression=True) > 0.9


def test_drift_proxy_is_small_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(40, 5))
    same, shifted = rng.normal(size=(40, 5)), rng.normal(size=(40, 5)) + 2.0
    assert abs(drift_proxy(same, reference)) < 0.05 < drift_proxy(shifted, reference)


def test_half_sampling_interval_has_the_width_of_the_mean_s_standard_error():
    from taskalign.advise import case_bootstrap

    rng = np.random.default_rng(8)
    values = rng.normal(size=400)
    groups = np.repeat(np.arange(100), 4)              # 100 cases of 4 rows each
    case_means = values.reshape(100, 4).mean(1)
    interval = case_bootstrap(lambda rows: values[rows].mean(), groups, resamples=2000, seed=0)
    expected_width = 2 * 1.96 * case_means.std(ddof=1) / np.sqrt(100)
    assert interval.low < values.mean() < interval.high
    assert (interval.high - interval.low) == pytest.approx(expected_width, rel=0.15)
    assert case_bootstrap(lambda rows: 0.0, np.arange(3), resamples=10) is None      # under 4 cases


def test_ranking_shares_ties_and_mean_rank_skips_cautioned_estimators():
    from taskalign.advise.scoring import Score, mean_rank, ranking

    def scores(logme, drift, caution=None):
        s = {name: Score(None, None, 10, 10, "", "n/a") for name in ("h_score", "linear_probe", "knn")}
        s["logme"], s["drift_proxy"] = Score(logme, None, 10, 10), Score(drift, None, 10, 10, caution=caution)
        return s
    table = {"a": scores(1.0, 0.5), "b": scores(1.0, 0.1), "c": scores(0.2, 0.3)}
    ranks = ranking(table)
    assert ranks["logme"] == {"a": 1, "b": 1, "c": 3}
    assert ranks["drift_proxy"] == {"b": 1, "c": 2, "a": 3}          # smaller is better
    assert mean_rank(ranks, table) == {"a": 2.0, "b": 1.0, "c": 2.5}
    table["a"]["drift_proxy"] = Score(0.5, None, 10, 10, caution="at its ceiling")
    assert mean_rank(ranking(table), table) == {"a": 1.0, "b": 1.0, "c": 3.0}


@pytest.mark.parametrize("call,match", [
    (lambda f, y: logme(f, y[:-1]), "10 rows but labels have 9"),
    (lambda f, y: h_score(f, y[:-1]), "10 rows but labels have 9"),
    (lambda f, y: logme(f, np.zeros(10)), "one class"),
    (lambda f, y: h_score(f, np.ones(10, dtype=int)), "one class"),
    (lambda f, y: linear_probe_score(f, np.zeros(10)), "one class"),
    (lambda f, y: logme(np.where(np.arange(10)[:, None] == 3, np.nan, f), y), "NaN or Inf"),
    (lambda f, y: h_score(f, np.where(np.arange(10) == 2, np.nan, y.astype(float))), "NaN or Inf"),
    (lambda f, y: logme(f, np.full(10, np.nan), regression=True), "NaN or Inf"),
    (lambda f, y: logme(f[0], y), "must be 2-D|2-D|shape"),
    (lambda f, y: knn_score(f, y, groups=np.zeros(10)), "at least 2 cases"),
    (lambda f, y: drift_proxy(f, f[:, :2]), "columns"),
])
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(call, match):
    rng = np.random.default_rng(7)
    f, y = rng.normal(size=(10, 3)), np.array([0, 1] * 5)
    with pytest.raises(ValueError, match=match):
        call(f, y)


# ---- `taskalign advise` end to end (smoke preset: 8 training cases on an 8x32x32 grid) ----

import json
from pathlib import Path

from taskalign.advise.trust import SHIPPED_TRUST
from taskalign.cli import main

PICAI = Path("/work/shared/data/real/picai_sample/cases.csv")


def _checkpoint(tmp_path: Path, seed: int) -> Path:
    """A profound_conv (micro) state dict of random init `seed`, as a user's safetensors file."""
    import torch
    from safetensors.torch import save_file

    from taskalign.encoders.base import create_encoder

    torch.manual_seed(seed)
    encoder = create_encoder("profound_conv", size="micro")
    path = tmp_path / f"ckpt_{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    return path


def _advise_json(capsys, *args) -> dict:
    assert main(["advise", "--preset", "smoke", "--bootstrap", "5", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_advise_ranks_two_checkpoints_and_a_random_init(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, 3)
    out = _advise_json(capsys, "--task", "segmentation", "--cases", "6", "--encoders",
                       f"profound_conv={ckpt}", "profound_conv=random")
    labels = [c["label"] for c in out["candidates"]]
    assert labels == [f"profound_conv={ckpt}", "profound_conv=random"]
    assert out["n_cases"] == 6 and out["candidates"][0]["source"] == "file"
    assert out["candidates"][0]["unit"] == "cell"
    shipped = json.loads(SHIPPED_TRUST.read_text())["records"]
    for name, info in out["estimators"].items():   # the shipped quick matrix's measured trust, by default
        assert info["rank_correlation_with_finetuned_gain"] == [
            r for r in shipped if r["target"] == "segmentation" and r["estimator"] == name]
        assert "quick transfer matrix" in info["rank_correlation_note"]
        assert sorted(out["ranking"][name].values()) in ([1, 2], [1, 1], [])
        for label in labels:
            score = out["scores"][label][name]
            assert (score["value"] is None) != (score["not_estimable"] is None), score
            if name in ("logme", "h_score", "drift_proxy"):
                assert score["value"] is not None, (name, score)
    logme_score = out["scores"][labels[0]]["logme"]
    interval = logme_score["interval"]
    assert interval["resamples"] > 0 and interval["low"] <= logme_score["value"] <= interval["high"]


def test_advise_regression_task_has_no_h_score(capsys):
    out = _advise_json(capsys, "--task", "synthesis", "--cases", "4", "--encoders", "profound_conv=random")
    score = out["scores"]["profound_conv=random"]
    assert "continuous" in score["h_score"]["not_estimable"]
    assert score["linear_probe"]["metric"] == "r2" and score["logme"]["value"] is not None


def test_advise_falls_back_to_random_init_without_shipped_weights(monkeypatch, capsys):
    monkeypatch.setattr("taskalign.pretrain.card.shipped_weights", lambda name, size: None)
    monkeypatch.setattr("taskalign.advise.trust.SHIPPED_TRUST", Path("/nonexistent/trust.json"))
    assert main(["advise", "--preset", "smoke", "--bootstrap", "0", "--task", "classification", "--cases", "6",
                 "--encoders", "profound_conv"]) == 0
    text = capsys.readouterr().out
    assert "no shipped foundation weights for profound_conv (micro)" in text
    assert "rank correlation with fine-tuned gain: not measured" in text


@pytest.mark.skipif(not PICAI.exists(), reason="the PI-CAI sample is not on this machine")
def test_advise_on_one_real_case_says_what_it_cannot_estimate(capsys):
    out = _advise_json(capsys, "--task", "segmentation", "--data", str(PICAI), "--encoders", "profound_conv=random")
    assert out["n_cases"] == 1 and "1 target case" in out["limits"][0]
    score = out["scores"]["profound_conv=random"]
    assert score["logme"]["value"] is not None and score["logme"]["interval"] is None
    assert "at least 2 cases" in score["linear_probe"]["not_estimable"]
    assert score["drift_proxy"]["not_estimable"]
    assert main(["advise", "--task", "classification", "--data", str(PICAI), "--encoders", "profound_conv=random"]) == 2
    assert "nothing can be estimated" in capsys.readouterr().err


@pytest.mark.parametrize("encoders,match", [
    (["no_such_encoder"], "unknown encoder 'no_such_encoder'"),
    (["profound_conv=/no/such/file.safetensors"], "does not exist"),
    (["profound_conv=random", "profound_conv=random"], "more than once"),
])
def test_advise_refuses_bad_candidates_in_one_line(encoders, match, capsys):
    assert main(["advise", "--preset", "smoke", "--task", "classification", "--encoders", *encoders]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskalign: error: ") and match in err and err.count("\n") == 1


def test_advise_shows_the_trust_measured_on_a_transfer_matrix(tmp_path, capsys):
    records = [{"encoder": "provicnet", "target": "classification", "estimator": "logme", "n_sources": 10,
                "rho": 0.42, "p_value": 0.2, "ci_low": -0.3, "ci_high": 0.9},
               {"encoder": "provicnet", "target": "segmentation", "estimator": "logme", "n_sources": 10,
                "rho": -0.5, "p_value": 0.1, "ci_low": -0.9, "ci_high": 0.2}]
    (tmp_path / "advise_trust.json").write_text(json.dumps(
        {"matrix": str(tmp_path), "preset": "quick", "n_train": 16, "sources": [], "records": records}))
    out = _advise_json(capsys, "--task", "classification", "--cases", "6", "--encoders", "profound_conv=random",
                       "--trust", str(tmp_path))
    logme_info = out["estimators"]["logme"]
    assert logme_info["rank_correlation_with_finetuned_gain"] == [records[0]]
    assert "rho +0.42 [-0.30, +0.90]" in logme_info["rank_correlation_note"]
    assert out["estimators"]["knn"]["rank_correlation_note"].startswith("not measured for classification")
    with pytest.raises(ValueError, match="advise_trust.json"):
        from taskalign.advise.trust import load_trust
        load_trust(tmp_path / "missing")
