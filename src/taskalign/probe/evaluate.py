"""`probe_encoder`: frozen probes of one encoder's weights against its random initialisation,
on a fixed held-out phantom cohort, with paired bootstrap intervals and the foundation gate.

The probe cohort is the phantom's `probe` cohort (its own patients, the downstream cohort's
scanners): no pretraining, downstream or reference case is among them. Both states (random
initialisation with `ProbeConfig.init_seed`, and the weights under test) see the same cases and
the same rows; each probe's difference (weights − random) gets a 95 % percentile interval from
a bootstrap over cases. The gate (DESIGN.md §3, in-house foundation weights):

    a probe is informative when random features score below `informative_below` (0.9)
    a probe is won when the difference is >= `margin` (0.05) and its interval excludes 0
    passed  = more than half of the informative probes are won
              and spread (median pairwise distance / mean norm) >= `min_spread` (0.05)
              for every feature a head reads (`pooled` and each map's mean)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders.base import Encoder
from taskalign.probe.features import DenseFeatures, dense_features, effective_rank, pool_to_grid, probe_grid, spread
from taskalign.probe.probes import (METRIC, RESTORATION, SEMANTIC, Table, Truth, ground_truth, out_of_fold,
                                    restoration_rows, restoration_table, semantic_table)
from taskalign.tasks.base import create_task

EncoderFactory = Callable[[tuple[str, ...]], Encoder]


@dataclass(frozen=True)
class ProbeConfig:
    n_cases: int = 192
    shape: tuple[int, int, int] = (16, 48, 48)
    spacing_mm: tuple[float, float, float] = (3.0, 1.5, 1.5)
    seed: int = 0                 # the probe cohort's phantom seed
    init_seed: int = 0            # the random initialisation compared against
    folds: int = 5
    bootstrap: int = 500
    margin: float = 0.05
    informative_below: float = 0.9
    min_spread: float = 0.05


@dataclass
class ProbeInputs:
    cases: list[Case]
    truth: Truth
    restoration: dict[str, tuple[list, tuple[str, ...], np.ndarray, list[np.ndarray]]] = field(default_factory=dict)


def probe_inputs(cfg: ProbeConfig) -> ProbeInputs:
    """The probe cohort, its ground truth and each restoration task's samples (state-independent)."""
    from taskalign.data.phantom import make_cohort

    cases = make_cohort(cfg.n_cases, seed=cfg.seed, cohort="probe", shape=cfg.shape, spacing_mm=cfg.spacing_mm)
    grid = probe_grid(cfg.shape)
    inputs = ProbeInputs(cases, ground_truth(cases, grid))
    for name in RESTORATION:
        task = create_task(name)
        samples = [task.make_sample(c, seed=cfg.seed) for c in cases]
        residual = np.stack([pool_to_grid(s.target - (s.base if s.base is not None else 0.0), grid) for s in samples])
        body = np.stack([pool_to_grid(s.mask, grid) for s in samples])
        inputs.restoration[name] = (samples, task.input_sequences, residual, restoration_rows(body))
    return inputs


def state_tables(make_encoder: EncoderFactory, inputs: ProbeInputs) -> tuple[dict[str, Table], DenseFeatures]:
    """Every probe's table under one encoder state, and its semantic features (for health)."""
    encoder = make_encoder(SEQUENCES)
    semantic = dense_features(encoder, [encoder.preprocess(c.image, SEQUENCES, c.gland) for c in inputs.cases])
    tables = {name: semantic_table(name, semantic.cells, inputs.truth) for name in SEMANTIC}
    for name, (samples, sequences, residual, rows) in inputs.restoration.items():
        encoder = make_encoder(sequences)
        feats = dense_features(encoder, [encoder.preprocess(s.input, sequences, s.gland) for s in samples])
        tables[name] = restoration_table(feats.cells, residual, rows)
    return tables, semantic


def score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """AUROC, balanced accuracy (threshold 0.5) or R² (1 − SSE/SST per target column, averaged)."""
    if metric == "auroc":
        return float(roc_auc_score(y, pred)) if len(np.unique(y)) == 2 else float("nan")
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(y, (pred >= 0.5).astype(int)))
    y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    sst = ((y2 - y2.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - ((y2 - p2) ** 2).sum(0) / np.maximum(sst, 1e-12)))


def paired_bootstrap(metric: str, table: Table, pred_a: np.ndarray, pred_b: np.ndarray, reps: int,
                     seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of score(b) − score(a), resampling cases with replacement."""
    rng = np.random.default_rng(seed)
    cases = np.unique(table.groups)
    rows_of = {g: np.flatnonzero(table.groups == g) for g in cases}
    diffs = []
    for _ in range(reps):
        rows = np.concatenate([rows_of[g] for g in rng.choice(cases, size=len(cases))])
        d = score(metric, table.y[rows], pred_b[rows]) - score(metric, table.y[rows], pred_a[rows])
        if math.isfinite(d):
            diffs.append(d)
    return (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))) if diffs else (math.nan, math.nan)


def health(features: DenseFeatures) -> dict[str, dict[str, float]]:
    """Spread and effective rank of every feature a head reads: `pooled` and each map's mean."""
    named = {"pooled": features.pooled, **{f"map{i}_mean": m for i, m in enumerate(features.map_means)}}
    return {k: {"spread": spread(v), "effective_rank": effective_rank(v)} for k, v in named.items()}


def gate(probes: list[dict], health_of: dict[str, dict[str, float]], cfg: ProbeConfig) -> dict:
    informative = [p for p in probes if p["informative"]]
    won = [p["name"] for p in informative if p["won"]]
    collapsed = [k for k, v in health_of.items() if not v["spread"] >= cfg.min_spread]
    passed = len(won) > len(informative) / 2 and not collapsed
    reason = (f"won {len(won)} of {len(informative)} informative probes ({', '.join(won) or 'none'}; a win is "
              f">= +{cfg.margin} with the interval above 0)")
    if collapsed:
        reason += f"; collapsed features (spread < {cfg.min_spread}): {', '.join(collapsed)}"
    return {"passed": bool(passed), "reason": reason}


def probe_encoder(make_random: EncoderFactory, make_trained: EncoderFactory, cfg: ProbeConfig = ProbeConfig(),
                  inputs: ProbeInputs | None = None, log=lambda msg: None) -> dict:
    """Probe table, health and gate of `make_trained`'s weights against `make_random`'s.
    Each factory builds the encoder for a tuple of input sequences (fixed weights, any call)."""
    inputs = inputs or probe_inputs(cfg)
    log(f"probe cohort: {len(inputs.cases)} cases")
    tables_r, feats_r = state_tables(make_random, inputs)
    tables_t, feats_t = state_tables(make_trained, inputs)
    probes = []
    for name in SEMANTIC + RESTORATION:
        metric, regression = METRIC[name], METRIC[name] == "r2"
        pred_r = out_of_fold(tables_r[name], regression, cfg.folds)
        pred_t = out_of_fold(tables_t[name], regression, cfg.folds)
        table = tables_t[name]
        random_value, trained_value = score(metric, table.y, pred_r), score(metric, table.y, pred_t)
        lo, hi = paired_bootstrap(metric, table, pred_r, pred_t, cfg.bootstrap)
        informative = random_value < cfg.informative_below
        probes.append({"name": name, "kind": "restoration" if regression else "semantic", "metric": metric,
                       "random": random_value, "pretrained": trained_value, "diff_ci": [lo, hi],
                       "informative": bool(informative), "n_rows": int(len(table.y)),
                       "won": bool(informative and trained_value - random_value >= cfg.margin and lo > 0)})
        log(f"  {name:22s} {metric:17s} random {random_value:.3f}  weights {trained_value:.3f}  "
            f"diff CI [{lo:+.3f}, {hi:+.3f}]")
    health_t = health(feats_t)
    return {"probes": probes, "health": health_t, "health_random": health(feats_r),
            "gate": gate(probes, health_t, cfg), "config": asdict(cfg)}


def seeded_random(build: EncoderFactory, seed: int) -> EncoderFactory:
    """A factory whose every encoder has the same random initialisation (torch seed `seed`)."""
    def make(sequences: tuple[str, ...]) -> Encoder:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build(sequences)
    return make
