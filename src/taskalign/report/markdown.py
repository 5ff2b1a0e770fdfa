"""`taskalign report DIR --markdown`: a finished study's answer as Markdown, for a README, a
paper's supplement or an issue, read from the same files as report.html (nothing recomputed but
the means over seeds):

- the pretraining gain (fine-tuned − scratch, in the task's metric) per task and encoder, a column
  per labelled-set size: the mean over seeds ± the half-width of its 95 % t interval over seeds;
- one row per (task, labelled-set size, encoder): the fine-tuned, scratch and specialised test
  metric (mean over seeds, ± the half-width of the 95 % t interval over seeds when there are two
  or more), fine-tuned − scratch paired per case (summary.json `paired_vs_scratch`: mean, 95 %
  bootstrap interval, Wilcoxon p where the metric is per case), RPG, D2P with its saturation
  (MMD² over its kernel ceiling) and the energy distance E2P;
- the claims per labelled-set size with their verdicts and intervals (`answer.claim_interval`);
- the correlations of D2P / E2P with the outcomes (pooled over cells), and early prediction (D2P
  and E2P at the early checkpoints against the final outcomes), each with n, Spearman ρ, its 95 %
  interval with the cells resampled, and the permutation p.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from taskalign.report.answer import claim_interval
from taskalign.report.cells import seed_stats
from taskalign.report.load import StudyData

CELL_HEADER = ("task", "metric", "labelled cases", "encoder", "fine-tuned", "scratch", "specialised",
               "fine-tuned − scratch [95 % CI], p", "RPG %", "D2P (sat.)", "E2P")


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _stat(values: list[Any], fmt: str = ".3f") -> str:
    s = seed_stats(_float(v) for v in values)
    if not s.finite:
        return "n/a"
    return f"{s.mean:{fmt}}" + (f" ± {s.ci95:{fmt.lstrip('+')}}" if s.n >= 2 and math.isfinite(s.ci95) else "")


def _paired(record: dict[str, Any] | None) -> str:
    if record is None or not math.isfinite(_float(record.get("mean_difference"))):
        return "n/a"
    text = f"{record['mean_difference']:+.3f} [{_float(record.get('ci_low')):+.3f}, {_float(record.get('ci_high')):+.3f}]"
    p = _float(record.get("p_value"))
    return text + (f", p = {p:.2g}" if math.isfinite(p) else "")


def _row(rows: list[dict[str, Any]], task: str, n_train: int, encoder: str, paired: dict) -> list[str]:
    """The per-cell table's row of one (task, size, encoder); `rows` are its seeds' result rows."""
    column = lambda name: [r.get(name) for r in rows]   # noqa: E731
    d2p = _stat(column("d2p"))
    saturation = seed_stats(_float(v) for v in column("d2p_saturation"))
    if saturation.finite:
        d2p += f" ({saturation.mean:.2f})"
    return [task, str(rows[0]["metric"]), str(n_train), encoder, _stat(column("value")),
            _stat(column("scratch_value")), _stat(column("specialised_value")),
            _paired(paired.get((encoder, task, n_train))), _stat(column("rpg"), ".1f"), d2p,
            _stat(column("e2p"), ".3g")]


def _table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda s: str(s).replace("|", "\\|")   # noqa: E731
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows])


def markdown_summary(study: StudyData) -> str:
    """The two tables of the module docstring, with a one-line description of the study."""
    paired = {(p["encoder"], p["task"], p.get("n_train")): p for p in study.summary.get("paired_vs_scratch") or []}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)   # (task, size, encoder) -> its seeds' rows
    for r in study.rows:
        groups[(r["task"], r["n_train"], r["encoder"])].append(r)
    cells = [_row(groups[key], *key, paired) for key in
             ((t, n, e) for t in study.tasks for n in study.regimes for e in study.encoders) if key in groups]
    seeds = len(study.seeds)
    lines = [f"Study `{study.study_dir}`: preset {study.preset}, {seeds} seed(s), labelled-set sizes "
             f"{', '.join(str(n) for n in study.regimes)}; metric means over seeds"
             + (" ± the half-width of their 95 % t interval" if seeds > 1 else "") + ".", ""]
    sizes = study.regimes
    gains = [[task, encoder] + [_stat([r["gain_over_scratch"] for r in groups[(task, n, encoder)]], "+.3f")
                                for n in sizes]
             for task in study.tasks for encoder in study.encoders]
    lines += ["Pretraining gain, fine-tuned − scratch (task metric; mean over seeds"
              + (" ± 95 % t half-width" if seeds > 1 else "") + "):", ""]
    lines += _table(["task", "encoder"] + [f"{n} labelled" for n in sizes], gains) + [""]
    lines += _table(CELL_HEADER, cells)
    claims = sorted(study.summary.get("claims") or [], key=lambda c: (-(c.get("n_train") or 0), c.get("claim", "")))
    if claims:
        lines += ["", "Claims per labelled-set size (summary.json; intervals as in report.html):", ""]
        lines += _table(("labelled cases", "claim", "verdict", "evidence", "95 % interval"),
                        [[str(c.get("n_train", "n/a")), c.get("claim", ""), c.get("verdict", ""),
                          c.get("evidence", ""), claim_interval(study, c)] for c in claims])
    for title, corr in (("Correlations over cells (summary.json correlations, D2P and E2P):",
                         [c for c in study.summary.get("correlations") or [] if c.get("alignment") in ("d2p", "e2p")]),
                        ("Early prediction (summary.json early_prediction):",
                         (study.summary.get("early_prediction") or {}).get("correlations") or [])):
        if corr:
            lines += ["", title, ""]
            lines += _table(("alignment", "outcome", "n", "Spearman ρ", "95 % CI (cells resampled)", "p"),
                            [[c["alignment"], c["outcome"], str(c.get("n")), f"{_float(c.get('spearman')):+.2f}",
                              _interval(c.get("spearman_ci_cells")), f"{_float(c.get('spearman_p')):.2g}"]
                             for c in corr])
    return "\n".join(lines) + "\n"


def _interval(ci: Any) -> str:
    low, high = (_float(v) for v in (ci or [math.nan, math.nan]))
    return f"[{low:+.2f}, {high:+.2f}]" if math.isfinite(low) and math.isfinite(high) else "n/a"
