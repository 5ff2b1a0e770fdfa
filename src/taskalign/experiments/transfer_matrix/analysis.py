"""The transfer matrix's results: one row per (encoder, source, target, seed), the source × target
matrices (seed means), and the test of the claim without the architecture confound.

- gain: fine-tuned − scratch on the task's metric (sign flipped where lower is better), the
  scratch run being the `none` source's run with the same seeds; RPG: relative to the target's
  specialised model (`study.analysis.outcomes.relative_gain`); D2P, its saturation and E2P from
  the fine-tuned run's alignment.json (the study's head-read feature and reference kernel: each
  source's kernel comes from its own pretrained and the random-init features, as in the study).
- within each target, over the pretrained sources (`none` is the baseline, gain 0 by definition):
  Spearman ρ of D2P (and E2P) with the gain, permutation p and a percentile interval from
  resampling sources (`stats.correlation`); the paper's claim predicts ρ < 0.
- the diagonal: is `sup-<target>` the source with the smallest D2P and with the largest gain?
- the dose series: D2P and gain of ssl-<p> in dose order, then `shipped`.
- early: the same correlation with D2P after the first epoch (`d2p_epoch1`) instead of the final D2P.
- advise trust: each `taskalign.advise` estimator's score of every source (frozen features of the
  labelled target cases, before fine-tuning; `none` included, its gain being 0) against the
  fine-tuned gain, Spearman ρ over sources per target, the estimator's sign applied (ρ > 0: the
  estimator ranks the sources as fine-tuning does). `taskalign advise --trust DIR` shows it.
Written: matrix.csv, matrix_<measure>_<encoder>.csv, summary.json, advise_trust.json, matrix.md,
matrix_<encoder>.png.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from taskalign import io
from taskalign.experiments.transfer_matrix.config import MatrixConfig
from taskalign.stats.correlation import spearman
from taskalign.study.analysis.outcomes import relative_gain
from taskalign.study.analysis.results import early_columns
from taskalign.study.cell import run_dir

MEASURES = ("gain", "rpg", "d2p", "e2p", "d2p_epoch1")
PREDICTORS = ("d2p", "e2p", "d2p_epoch1", "e2p_epoch1")


def _metrics(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    return io.read_json(path) if path.exists() else None


def matrix_rows(matrix_dir: Path, mcfg: MatrixConfig) -> list[dict[str, Any]]:
    """One row per finished (encoder, source, target, seed), `none` rows included."""
    from taskalign.experiments.transfer_matrix.units import SCRATCH, runs_dir

    rows = []
    base = runs_dir(matrix_dir, SCRATCH)
    for enc in mcfg.encoders:
        for task in mcfg.targets:
            for seed in mcfg.seeds:
                sc = _metrics(run_dir(base, f"{enc}-scratch", task, mcfg.n_train, seed))
                sp = _metrics(run_dir(base, "specialised", task, mcfg.n_train, seed))
                if sc is None or sp is None:
                    continue
                higher = bool(sc["higher_is_better"])
                for source in mcfg.sources:
                    folder = run_dir(runs_dir(matrix_dir, source), enc, task, mcfg.n_train, seed)
                    ft = sc if source == SCRATCH else _metrics(folder)
                    if ft is None or (source != SCRATCH and not (folder / "alignment.json").exists()):
                        continue
                    align = io.read_json(folder / "alignment.json") if source != SCRATCH else None
                    rows.append({
                        "encoder": enc, "source": source, "target": task, "seed": seed, "metric": sc["metric"],
                        "higher_is_better": higher, "value": ft["value"], "scratch_value": sc["value"],
                        "specialised_value": sp["value"], "gain": (ft["value"] - sc["value"]) * (1 if higher else -1),
                        "rpg": relative_gain(ft["value"], sp["value"], higher),
                        "d2p": align["d2p"]["mmd2"] if align else math.nan,
                        "d2p_saturation": align["d2p"]["saturation"] if align else math.nan,
                        "e2p": align["d2p"]["energy"] if align else math.nan,
                        "d2s": align["d2s"]["mmd2"] if align else math.nan,
                        **(early_columns(align.get("early", [])) if align else {}),
                    })
    return rows


def seed_means(rows: list[dict[str, Any]], measure: str) -> dict[tuple[str, str, str], float]:
    """{(encoder, source, target): mean over seeds} of one measure (NaN-free seeds only)."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        v = r.get(measure)
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            groups.setdefault((r["encoder"], r["source"], r["target"]), []).append(float(v))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def within_target(rows: list[dict[str, Any]], mcfg: MatrixConfig) -> list[dict[str, Any]]:
    """Per (encoder, target, predictor): Spearman of the predictor with the gain over the
    pretrained sources (seed means), and the diagonal's ranks."""
    gain, predictors = seed_means(rows, "gain"), {name: seed_means(rows, name) for name in PREDICTORS}
    out = []
    for enc in mcfg.encoders:
        for target in mcfg.targets:
            sources = [s for s in mcfg.sources if s != "none" and (enc, s, target) in gain]
            for name, pred in predictors.items():
                pairs = [(pred[(enc, s, target)], gain[(enc, s, target)]) for s in sources if (enc, s, target) in pred]
                out.append(_correlated({"encoder": enc, "target": target, "predictor": name}, pairs, mcfg))
    return out


def _correlated(record: dict[str, Any], pairs: list[tuple[float, float]], mcfg: MatrixConfig) -> dict[str, Any]:
    """`record` with n_sources and, for >= 3 pairs with more than one x value, Spearman ρ of
    (x, gain) with its permutation p and percentile interval over sources (seeded by the record)."""
    seed = sum(map(ord, "/".join(str(v) for v in record.values())))
    record = {**record, "n_sources": len(pairs)}
    if len(pairs) >= 3 and len({x for x, _ in pairs}) > 1:
        x, y = np.array(pairs).T
        res = spearman(x, y, permutations=mcfg.permutations, bootstrap=mcfg.bootstrap, seed=seed)
        record.update(rho=res.coefficient, p_value=res.p_value, ci_low=res.ci_low, ci_high=res.ci_high)
    return record


def diagonal(rows: list[dict[str, Any]], mcfg: MatrixConfig) -> list[dict[str, Any]]:
    """Per (encoder, target) with a `sup-<target>` source: its rank by D2P (1 = smallest) and by
    gain (1 = largest) among the pretrained sources."""
    gain, d2p = seed_means(rows, "gain"), seed_means(rows, "d2p")
    out = []
    for enc in mcfg.encoders:
        for target in mcfg.targets:
            diag = f"sup-{target}"
            sources = [s for s in mcfg.sources if s != "none" and (enc, s, target) in gain and (enc, s, target) in d2p]
            if diag not in sources:
                continue
            by_d2p = sorted(sources, key=lambda s: d2p[(enc, s, target)])
            by_gain = sorted(sources, key=lambda s: -gain[(enc, s, target)])
            out.append({"encoder": enc, "target": target, "n_sources": len(sources),
                        "rank_by_d2p": by_d2p.index(diag) + 1, "rank_by_gain": by_gain.index(diag) + 1,
                        "smallest_d2p": by_d2p[0], "largest_gain": by_gain[0]})
    return out


def doses(rows: list[dict[str, Any]], mcfg: MatrixConfig) -> list[dict[str, Any]]:
    """The dose series per (encoder, target): ssl-<p> in dose order, then shipped."""
    series = [s for s in mcfg.sources if s.startswith("ssl-")] + [s for s in mcfg.sources if s == "shipped"]
    gain, d2p = seed_means(rows, "gain"), seed_means(rows, "d2p")
    return [{"encoder": enc, "target": t, "sources": series,
             "d2p": [d2p.get((enc, s, t), math.nan) for s in series],
             "gain": [gain.get((enc, s, t), math.nan) for s in series]}
            for enc in mcfg.encoders for t in mcfg.targets]


def advise_trust(matrix_dir: Path, rows: list[dict[str, Any]], mcfg: MatrixConfig) -> list[dict[str, Any]]:
    """Per (encoder, target, estimator): Spearman of the signed estimator score with the gain."""
    from taskalign.advise.scoring import ESTIMATORS, HIGHER_IS_BETTER

    gain = seed_means(rows, "gain")
    out = []
    for enc in mcfg.encoders:
        for target in mcfg.targets:
            path = Path(matrix_dir) / "advise" / enc / f"{target}.json"
            if not path.exists():
                continue
            scores = io.read_json(path)["scores"]
            for name in ESTIMATORS:
                sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
                pairs = [(sign * scores[s][name]["value"], gain[(enc, s, target)]) for s in mcfg.sources
                         if s in scores and scores[s][name]["value"] is not None and (enc, s, target) in gain]
                out.append(_correlated({"encoder": enc, "target": target, "estimator": name}, pairs, mcfg))
    return out


def write_analysis(matrix_dir: Path, mcfg: MatrixConfig) -> dict[str, Any]:
    """matrix.csv, the per-measure matrices, summary.json, matrix.md and the heatmaps."""
    from taskalign.experiments.transfer_matrix.report import heatmaps, markdown

    matrix_dir = Path(matrix_dir)
    rows = matrix_rows(matrix_dir, mcfg)
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        io.write_text(matrix_dir / "matrix.csv",
                      "\n".join([",".join(cols)] + [",".join(_cell(r.get(c)) for c in cols) for r in rows]) + "\n")
    for enc in mcfg.encoders:
        for measure in MEASURES:
            means = seed_means(rows, measure)
            lines = [",".join(["source", *mcfg.targets])]
            lines += [",".join([s, *(_cell(means.get((enc, s, t), math.nan)) for t in mcfg.targets)])
                      for s in mcfg.sources]
            io.write_text(matrix_dir / f"matrix_{measure}_{enc}.csv", "\n".join(lines) + "\n")
    summary = {"config": mcfg.to_dict(), "sources": list(mcfg.sources), "rows": len(rows),
               "expected_rows": len(mcfg.encoders) * len(mcfg.sources) * len(mcfg.targets) * len(mcfg.seeds),
               "within_target": within_target(rows, mcfg), "diagonal": diagonal(rows, mcfg),
               "doses": doses(rows, mcfg), "advise_trust": advise_trust(matrix_dir, rows, mcfg)}
    io.write_json(matrix_dir / "summary.json", summary)
    io.write_json(matrix_dir / "advise_trust.json", {
        "matrix": str(matrix_dir), "preset": mcfg.preset, "config_hash": mcfg.hash(), "n_train": mcfg.n_train,
        "sources": list(mcfg.sources), "records": summary["advise_trust"]})
    io.write_text(matrix_dir / "matrix.md", markdown(summary, rows, mcfg))
    heatmaps(matrix_dir, rows, mcfg)
    return summary


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return "" if v is None else str(v)
