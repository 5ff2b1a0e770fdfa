"""The report's statistics tables from summary.json: correlations (pooled over every cell, per
labelled-set size, per task), the within-task sign agreement, and the paired per-case comparisons
with the specialised model and with scratch. Never a coefficient without its n, p and interval."""
from __future__ import annotations

from typing import Any

from taskalign.report.markup import Raw, _ci, _e, _int, _num, _table

CORRELATION_HEADERS = ["alignment", "outcome", "n", "Spearman ρ", "ρ 95 % CI (cells)", "ρ 95 % CI (measurement)",
                       "p (Spearman)", "Pearson r", "r 95 % CI (cells)", "r 95 % CI (measurement)", "p (Pearson)"]


def correlation_sections(summary: dict[str, Any]) -> str:
    """Pooled correlations, then one table per labelled-set size and per task, then within-task."""
    return (_pooled(summary) + _by_regime(summary.get("by_regime") or []) + _by_task(summary.get("by_task") or [])
            + within_task_section(summary.get("within_task") or {}) + early_section(summary.get("early_prediction")))


def early_section(early: dict[str, Any] | None) -> str:
    """Early prediction: D2P / E2P at the early checkpoints against the final outcomes."""
    head = ("<h3 id='early'>Early prediction: D2P early in fine-tuning against the final outcome</h3>\n"
            "<p class='small'>Could a user stop a bad fine-tuning early? D2P and energy distance (E2P) of the "
            "fine-tuned encoder at an early checkpoint (suffix _epoch1: after the first epoch; _10pct: at the epoch "
            "nearest 10 % of the steps) against the final pretraining gain (fine-tuned − scratch), RPG and the final "
            "D2P / E2P; cells, seeds and intervals as above (summary.json early_prediction). "
            + _e((early or {}).get("note", "")) + "</p>\n")
    corr = (early or {}).get("correlations") or []
    if not corr:
        return head + "<p>No early checkpoints in this study.</p>"
    return head + _table("correlations-early", CORRELATION_HEADERS, correlation_rows(corr), left=(0, 1))


def correlation_rows(corr: list[dict[str, Any]], prefix: list[Any] | None = None) -> list[list[Any]]:
    return [(prefix or []) + [c.get("alignment", "n/a"), c.get("outcome", "n/a"), _int(c.get("n")),
                              _num(c.get("spearman"), ".3f"), _ci(c.get("spearman_ci_cells")), _ci(c.get("spearman_ci")),
                              _num(c.get("spearman_p"), ".3g"), _num(c.get("pearson"), ".3f"),
                              _ci(c.get("pearson_ci_cells")), _ci(c.get("pearson_ci")), _num(c.get("pearson_p"), ".3g")]
            for c in corr]


def _pooled(summary: dict[str, Any]) -> str:
    corr = summary.get("correlations") or []
    first = corr[0] if corr else {}
    over = first.get("bootstrap_over", "rows")
    seeds = first.get("n_seeds")
    head = ("<h2>Correlations across cells</h2>\n<p class='small'>From summary.json: "
            f"{_e(summary.get('n_cells', 'n/a'))} result row(s). Pooled over every cell: each point is one "
            "encoder × task × labelled-set size cell, its mean over "
            f"{_e(seeds if seeds is not None else 'n/a')} seed(s) (seeds are repeats, not extra points); n "
            "counts the cells. p: permutation test on the cell means. Two percentile bootstrap 95 % intervals "
            f"({_e(first.get('bootstrap', 'n/a'))} replicates): “cells” resamples the cells and, within each, "
            f"{_e(over)} (would the association hold for other such cells? the question p answers); "
            f"“measurement” resamples only {_e(over)} with the cells fixed (how well these cells' values are "
            "known). Cells cluster by encoder, task and size, so read them with the per-size, per-task and "
            "within-task views below.</p>\n")
    if not corr:
        return head + "<p>No correlations in summary.json.</p>"
    return head + _table("correlations", CORRELATION_HEADERS, correlation_rows(corr), left=(0, 1))


def _by_regime(regimes: list[dict[str, Any]]) -> str:
    if not regimes:
        return ""
    rows = []
    for reg in regimes:
        rows += correlation_rows(reg.get("correlations") or [], [_int(reg.get("n_train")), _int(reg.get("n_cells"))])
    return ("<h3>Per labelled-set size</h3>\n<p class='small'>The same correlations computed on one size's "
            "encoder × task cells alone (summary.json by_regime).</p>\n"
            + _table("correlations-regime", ["labelled cases", "rows"] + CORRELATION_HEADERS, rows, left=(2, 3)))


def _by_task(tasks: list[dict[str, Any]]) -> str:
    if not tasks:
        return ""
    rows = []
    for t in tasks:
        rows += correlation_rows(t.get("correlations") or [], [t.get("task", "n/a")])
    return ("<h3>Per task</h3>\n<p class='small'>The task held fixed: its cells are the encoders × labelled-set "
            "sizes (summary.json by_task), so n is small.</p>\n"
            + _table("correlations-task", ["task"] + CORRELATION_HEADERS, rows, left=(0, 1, 2)))


def within_task_section(wt: dict[str, Any]) -> str:
    tasks = wt.get("tasks") or []
    head = "<h3>Within-task sign agreement (largest labelled-set size)</h3>\n"
    if not tasks:
        return head + "<p>No within-task comparison in summary.json.</p>"
    rows = [[t.get("task", "n/a"), t.get("smaller_d2p", "n/a"), t.get("larger_gain", "n/a"),
             Raw("<span class='badge holds'>agree</span>") if t.get("agree")
             else Raw("<span class='badge fails'>disagree</span>")] for t in tasks]
    text = (f"<p>In {_e(wt.get('n_agree', 'n/a'))} of {_e(wt.get('n_tasks', len(tasks)))} task(s) the "
            f"encoder with the smaller D2P also had the larger gain (exact sign test p = "
            f"{_e(_num(wt.get('p_value'), '.3g'))}).</p>\n")
    return head + text + _table("within-task", ["task", "smaller D2P", "larger gain", "agree"], rows,
                                left=(0, 1, 2, 3))


def paired_section(summary: dict[str, Any], key: str = "paired_vs_specialised",
                   against: str = "the specialised model") -> str:
    paired = summary.get(key) or []
    head = f"<h2>Paired per-case comparison with {_e(against)}</h2>\n"
    if not paired:
        return head + "<p>No per-case comparison in summary.json.</p>"
    paired = sorted(paired, key=lambda p: (str(p.get("task")), str(p.get("encoder")), p.get("n_train") or 0))
    rows = [[p.get("task", "n/a"), p.get("encoder", "n/a"), _int(p.get("n_train")), p.get("metric", "n/a"),
             _int(p.get("n")), _int(p.get("n_seeds")), _num(p.get("mean_difference"), "+.4g"),
             _ci([p.get("ci_low"), p.get("ci_high")]), _num(p.get("statistic"), ".4g"), _num(p.get("p_value"), ".3g"),
             p.get("test", "")] for p in paired]
    text = (f"<p class='small'>Per test case, the fine-tuned VFM's value minus {_e(against)}'s "
            "(each case averaged over seeds first; the test cases are the same in every seed). n cases: cases "
            "with a value in both models (segmentation: cases with a lesion). 95 % interval: bootstrap "
            "over cases. Wilcoxon signed-rank test, two-sided, zero differences dropped. AUROC has no "
            "per-case value: its row is the difference of the two AUROCs with a case-bootstrap interval."
            "</p>\n")
    headers = ["task", "encoder", "labelled cases", "metric", "n cases", "seeds", "mean difference", "95 % CI",
               "Wilcoxon W", "p", "test"]
    table_id = "paired" if key == "paired_vs_specialised" else "paired-scratch"
    return head + text + _table(table_id, headers, rows, left=(0, 1, 3, 10))
