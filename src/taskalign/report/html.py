"""report.html: one self-contained page (inline CSS, PNGs as base64 data URIs, no JavaScript).

Every piece of text from the study folder goes through `html.escape`; the only unescaped markup
is built here. Numbers that are missing or NaN read "n/a"; statistics are never shown without
their n, p-value and interval.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import platform
from importlib import metadata
from typing import Any

from taskalign.report.cells import cell_summaries
from taskalign.report.markup import Raw, _ci, _e, _int, _mean_ci, _num, _table, _with_p
from taskalign.report.layers import layer_section, read_layer_profiles
from taskalign.report.load import StudyData, is_number
from taskalign.report.plots import METRIC_LABELS, PlotFile

INDICATIVE_PRESETS = ("smoke", "quick")
VERSION_PACKAGES = ("torch", "monai", "numpy", "taskalign")
CONFIG_KEY_HINTS = ("size", "shape", "spacing", "steps", "epoch", "batch", "lr", "learning_rate",
                    "embed_dim", "depth", "filters", "patch", "slices", "cases")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#666;margin-top:0}
.warn{background:#fff3cd;border:2px solid #e0a800;border-radius:6px;padding:.8em 1em;font-size:1.1em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f0f0f0}td.t,th.t{text-align:left}
tbody tr:nth-child(even){background:#fafafa}
.na{color:#999}.small{font-size:.85em;color:#555}
.badge{display:inline-block;padding:.1em .5em;border-radius:4px;color:#fff;font-weight:600;white-space:nowrap}
.holds{background:#2e7d32}.fails{background:#c62828}.unsure{background:#b26a00}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}
"""


def render_html(study: StudyData, plots: list[PlotFile]) -> str:
    """The whole page as one string (UTF-8, no external references)."""
    title = f"taskalign study report: {study.study_dir.name}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>{_e(str(study.study_dir.resolve()))} · report built "
        f"{_e(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>",
        _preset_warning(study.preset),
        _overview(study),
        _start_weights_section(study.summary),
        _results_section(study),
        _correlation_section(study.summary),
        _within_task_section(study.summary),
        _paired_section(study.summary),
        _paired_section(study.summary, "paired_vs_scratch", "the same architecture trained from scratch"),
        layer_section(read_layer_profiles(study.study_dir)),
        _claims_section(study.summary),
        _plots_section(plots),
        _timing_section(study.timing),
        _excluded_section(study),
        _notes_section(study.summary),
        _versions_section(study),
        _config_section(study.config),
    ]
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _start_weights_section(summary: dict[str, Any]) -> str:
    """Which weights each encoder started from, and whether they earned the name foundation model."""
    status = summary.get("start_weights") or {}
    if not status:
        return ""
    items = []
    for encoder, st in status.items():
        if st.get("gate") is True:
            what = (f"in-house foundation weights ({_e(st.get('source'))}); passed the foundation gate: "
                    f"{_e(st.get('reason'))}")
        elif st.get("gate") is False:
            what = (f"<strong>in-house pretrained weights that failed the foundation gate: not a foundation "
                    f"model</strong> ({_e(st.get('reason'))})")
        else:
            what = _e(f"{st.get('source')}: {st.get('reason')}")
        items.append(f"<li><code>{_e(encoder)}</code>: {what}</li>")
    return "<h2>Start weights</h2>\n<ul class='small'>" + "".join(items) + "</ul>\n"


def _preset_warning(preset: str) -> str:
    if preset not in INDICATIVE_PRESETS:
        return ""
    return (f"<div class='warn' id='preset-warning'><strong>Preset “{_e(preset)}”: indicative numbers: "
            "small models, short training; use <code>standard</code> for conclusions.</strong></div>")


def _overview(study: StudyData) -> str:
    s = study
    seeds = ", ".join(str(x) for x in s.seeds) or "n/a"
    text = (f"This study ran the <code>{_e(s.preset)}</code> preset with seed(s) {_e(seeds)}: "
            f"{len(s.encoders)} encoder(s) ({_e(', '.join(s.encoders))}) were fine-tuned on "
            f"{len(s.tasks)} task(s) ({_e(', '.join(s.tasks))}), and each was compared with the same "
            f"architecture trained from scratch and with the task's specialised model, giving "
            f"{len(s.rows)} result row(s) (encoder × task × seed).")
    if s.splits:
        counts = " / ".join(f"{len(s.splits.get(k) or [])} {k}" for k in ("train", "val", "test", "pretrain"))
        text += f" Cases: {_e(counts)} (data seed {_e(s.splits.get('data_seed', 'n/a'))})."
        if s.splits.get("label_rule"):
            text += f" csPCa label from the rule <code>{_e(s.splits['label_rule'])}</code>."
    facts = _config_facts(s.config)
    if facts:
        text += " Configuration: " + "; ".join(f"<code>{_e(k)}</code> = {_e(v)}" for k, v in facts) + "."
    steps = sorted({m.get("steps") for m in s.metrics.values() if is_number(m.get("steps"))})
    if steps:
        text += (f" Fine-tuning steps per run: {_e(_span(steps))}; the learning rates and epochs of each "
                 "model are in the table below.")
    return f"<h2>What was run</h2>\n<p id='overview'>{text}</p>\n" + _setup_table(s)


def _setup_table(study: StudyData) -> str:
    """Steps, epochs and learning rates per model, from the runs' metrics.json."""
    by_model: dict[str, list[dict]] = {}
    for (model, _, _), rec in sorted(study.metrics.items()):
        by_model.setdefault(model, []).append(rec)
    if not by_model:
        return "<p class='small'>No cells/*/metrics.json found: training set-up per model not available.</p>"
    rows = []
    for model, recs in by_model.items():
        lrs = sorted({_lr_text(r.get("lr")) for r in recs})
        rows.append([model, len(recs), _span(sorted({r.get("steps") for r in recs if is_number(r.get("steps"))})),
                     _span(sorted({r.get("epochs") for r in recs if is_number(r.get("epochs"))})),
                     " | ".join(lrs)])
    return _table("setup", ["model", "runs", "steps", "epochs", "learning rates"], rows, left=(0, 4))


def _results_section(study: StudyData) -> str:
    headers = ["task", "encoder", "seed", "metric", "value", "specialised", "scratch", "RPG %",
               "gain over scratch", "conv. epoch fine-tuned", "conv. epoch scratch", "conv. epoch specialised",
               "D2P (p)", "D2R (p)", "D2S (p)", "D2P/D2R", "CKA pre / rand / scratch"]
    rows = []
    for r in sorted(study.rows, key=lambda r: (study.tasks.index(r["task"]), r["encoder"], r["seed"] or 0)):
        conv = _int(r.get("convergence_epoch"))
        if r.get("convergence_censored") and conv != "n/a":
            conv = f">{conv}"
        rows.append([r["task"], r["encoder"], _int(r["seed"]), _metric_name(r), _num(r["value"]),
                     _num(r["specialised_value"]), _num(r["scratch_value"]), _num(r["rpg"], "+.2f"),
                     _num(r["gain_over_scratch"], "+.4g"), conv, _int(r.get("scratch_convergence_epoch")),
                     _int(r.get("specialised_convergence_epoch")), _with_p(r["d2p"], r["d2p_p"]),
                     _with_p(r["d2r"], r["d2r_p"]), _with_p(r["d2s"], r["d2s_p"]), _num(r["d2p_d2r_ratio"]),
                     " / ".join(_num(r[k], ".3f") for k in ("cka_pretrained", "cka_random", "cka_scratch"))])
    out = ("<h2>Results</h2>\n<p class='small'>One row per encoder × task × seed (results.csv). Value, "
           "specialised and scratch are the primary test metric. RPG = 100 × (value − specialised) / "
           "|specialised|, sign flipped for lower-is-better metrics. Convergence epoch: first epoch whose "
           "validation metric reaches 95 % of the best value any model reached on that task and seed; "
           "“&gt;N” means never reached in N epochs (censored). D2x = MMD² of the fine-tuned features to "
           "the pretrained (P), random-init (R) and scratch-trained (S) features of the same encoder, "
           "with permutation p-values; n/a = not available.</p>\n")
    out += _table("results", headers, rows, left=(0, 1, 3))
    if len(study.seeds) > 1:
        out += _mean_table(study)
    return out


def _mean_table(study: StudyData) -> str:
    fields = ["value", "specialised_value", "scratch_value", "rpg", "convergence_epoch", "d2p", "d2r", "d2s",
              "cka_pretrained"]
    rows = []
    for c in cell_summaries(study.rows, fields):
        cells = [_mean_ci(c[f]) + (" (censored)" if f == "convergence_epoch" and c["censored_any"] else "")
                 for f in fields]
        rows.append([c["task"], c["encoder"], c["n_seeds"]] + cells)
    headers = ["task", "encoder", "seeds", "value", "specialised", "scratch", "RPG %", "conv. epoch",
               "D2P", "D2R", "D2S", "CKA pre"]
    return ("<h3>Mean over seeds</h3>\n<p class='small'>mean ± half width of the 95 % t interval over "
            "seeds (n/a with fewer than two finite values); “censored”: in at least one seed the "
            "convergence target was never reached and the last epoch was counted.</p>\n" + _table("results-mean", headers, rows, left=(0, 1)))


def _correlation_section(summary: dict[str, Any]) -> str:
    corr = summary.get("correlations") or []
    first = corr[0] if corr else {}
    over = first.get("bootstrap_over", "rows")
    seeds = first.get("n_seeds")
    head = ("<h2>Correlations across encoder × task cells</h2>\n<p class='small'>From summary.json: "
            f"{_e(summary.get('n_cells', 'n/a'))} result row(s). Each point is one encoder × task cell, "
            f"its mean over {_e(seeds if seeds is not None else 'n/a')} seed(s) (seeds are repeats, not "
            "extra points); n counts the cells. p: permutation test on the cell means. Two percentile "
            f"bootstrap 95 % intervals ({_e(first.get('bootstrap', 'n/a'))} replicates): “cells” resamples "
            f"the cells and, within each, {_e(over)} (would the association hold for other such cells? "
            "the question p answers); “measurement” resamples only "
            f"{_e(over)} with the cells fixed (how well these cells' values are known). "
            "Cells cluster by encoder and by task, so read them with the within-task view below.</p>\n")
    if not corr:
        return head + "<p>No correlations in summary.json.</p>"
    rows = [[c.get("alignment", "n/a"), c.get("outcome", "n/a"), _int(c.get("n")),
             _num(c.get("spearman"), ".3f"), _ci(c.get("spearman_ci_cells")), _ci(c.get("spearman_ci")),
             _num(c.get("spearman_p"), ".3g"), _num(c.get("pearson"), ".3f"), _ci(c.get("pearson_ci_cells")),
             _ci(c.get("pearson_ci")), _num(c.get("pearson_p"), ".3g")]
            for c in corr]
    headers = ["alignment", "outcome", "n", "Spearman ρ", "ρ 95 % CI (cells)", "ρ 95 % CI (measurement)",
               "p (Spearman)", "Pearson r", "r 95 % CI (cells)", "r 95 % CI (measurement)", "p (Pearson)"]
    return head + _table("correlations", headers, rows, left=(0, 1))


def _within_task_section(summary: dict[str, Any]) -> str:
    wt = summary.get("within_task") or {}
    tasks = wt.get("tasks") or []
    head = "<h2>Within-task sign agreement</h2>\n"
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


def _paired_section(summary: dict[str, Any], key: str = "paired_vs_specialised",
                   against: str = "the specialised model") -> str:
    paired = summary.get(key) or []
    head = f"<h2>Paired per-case comparison with {_e(against)}</h2>\n"
    if not paired:
        return head + "<p>No per-case comparison in summary.json.</p>"
    rows = [[p.get("task", "n/a"), p.get("encoder", "n/a"), p.get("metric", "n/a"), _int(p.get("n")),
             _int(p.get("n_seeds")), _num(p.get("mean_difference"), "+.4g"), _ci([p.get("ci_low"), p.get("ci_high")]),
             _num(p.get("statistic"), ".4g"), _num(p.get("p_value"), ".3g"), p.get("test", "")] for p in paired]
    text = (f"<p class='small'>Per test case, the fine-tuned VFM's value minus {_e(against)}'s "
            "(each case averaged over seeds first; the test cases are the same in every seed). n: cases "
            "with a value in both models (segmentation: cases with a lesion). 95 % interval: bootstrap "
            "over cases. Wilcoxon signed-rank test, two-sided, zero differences dropped. AUROC has no "
            "per-case value: its row is the difference of the two AUROCs with a case-bootstrap interval."
            "</p>\n")
    headers = ["task", "encoder", "metric", "n cases", "seeds", "mean difference", "95 % CI", "Wilcoxon W",
               "p", "test"]
    table_id = "paired" if key == "paired_vs_specialised" else "paired-scratch"
    return head + text + _table(table_id, headers, rows, left=(0, 1, 2, 9))


def _claims_section(summary: dict[str, Any]) -> str:
    claims = summary.get("claims") or []
    if not claims:
        return "<h2>Claims</h2>\n<p>No claims in summary.json.</p>"
    rows = [[c.get("claim", ""), _verdict_badge(str(c.get("verdict", "n/a"))), c.get("evidence", "")]
            for c in claims]
    return "<h2>Claims</h2>\n" + _table("claims", ["claim", "verdict", "evidence"], rows, left=(0, 1, 2))


def _plots_section(plots: list[PlotFile]) -> str:
    figures = []
    for p in plots:
        data = base64.b64encode(p.path.read_bytes()).decode("ascii")
        figures.append(f"<figure><img alt='{_e(p.title)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption><strong>{_e(p.title)}.</strong> {_e(p.caption)}</figcaption></figure>")
    return "<h2>Plots</h2>\n" + "\n".join(figures)


def _timing_section(timing: dict[str, float]) -> str:
    if not timing:
        return "<h2>Time per stage</h2>\n<p>No timing.json in the study folder.</p>"
    total = sum(v for v in timing.values() if is_number(v))
    rows = [[stage, _num(sec, ".1f"), _hms(sec)] for stage, sec in timing.items()]
    rows.append([Raw("<strong>total</strong>"), _num(total, ".1f"), _hms(total)])
    return "<h2>Time per stage</h2>\n" + _table("timing", ["stage", "seconds", "h:mm:ss"], rows, left=(0,))


def _excluded_section(study: StudyData) -> str:
    excluded = (study.splits or {}).get("excluded")
    if excluded is None:
        excluded = study.summary.get("excluded_cases") or []
    out = "<h2>Excluded cases and skipped tasks</h2>\n"
    if excluded:
        rows = [[e.get("case", "n/a"), e.get("reason", "n/a")] for e in excluded]
        out += _table("excluded", ["case", "reason"], rows, left=(0, 1))
    else:
        out += "<p id='excluded'>No case was excluded.</p>\n"
    skipped = study.summary.get("skipped_tasks") or []
    if skipped:
        rows = [[s.get("task", "n/a"), s.get("reason", "n/a")] for s in skipped]
        out += _table("skipped-tasks", ["skipped task", "reason"], rows, left=(0, 1))
    return out


def _notes_section(summary: dict[str, Any]) -> str:
    notes = summary.get("notes") or []
    if not notes:
        return ""
    return "<h2>Notes</h2>\n<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def _versions_section(study: StudyData) -> str:
    recorded = study.config.get("versions") or study.summary.get("versions")
    if isinstance(recorded, dict) and recorded:
        source, versions = "recorded with the study", dict(recorded)
    else:
        source = "of the environment that built this report (the study folder records none)"
        versions = {"python": platform.python_version()}
        for pkg in VERSION_PACKAGES:
            try:
                versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                versions[pkg] = "not installed"
    rows = [[k, v] for k, v in versions.items()]
    return (f"<h2>Software versions</h2>\n<p class='small'>Versions {_e(source)}.</p>\n"
            + _table("versions", ["package", "version"], rows, left=(0, 1)))


def _config_section(config: dict[str, Any]) -> str:
    text = json.dumps(config, indent=2, sort_keys=True, default=str)
    return ("<h2>Configuration</h2>\n<details><summary>config.json (resolved study configuration)"
            f"</summary><pre>{_e(text)}</pre></details>")


# ---- small formatting helpers -------------------------------------------------------------

def _metric_name(row: dict[str, Any]) -> str:
    arrow = {True: " ↑", False: " ↓"}.get(row.get("higher_is_better"), "")
    return METRIC_LABELS.get(str(row["metric"]).lower(), row["metric"]) + arrow


def _verdict_badge(verdict: str) -> Raw:
    cls = {"holds": "holds", "does not hold": "fails"}.get(verdict, "unsure")
    return Raw(f"<span class='badge {cls}'>{_e(verdict)}</span>")


def _span(values: list) -> str:
    if not values:
        return "n/a"
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _lr_text(lr: Any) -> str:
    if isinstance(lr, dict):
        return ", ".join(f"{k} {_num(v, '.3g')}" for k, v in lr.items()) or "n/a"
    return _num(lr, ".3g")


def _hms(sec: Any) -> str:
    if not is_number(sec):
        return "n/a"
    total = int(round(sec))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _config_facts(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Sizes, steps and learning rates from the resolved config (key names vary with the
    StudyConfig version, so match on name hints); scalars and short lists only."""
    facts = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            facts += _config_facts(value, path + ".")
            continue
        parts = path.lower().split(".")
        hinted = any(h in part for part in parts for h in CONFIG_KEY_HINTS) or parts[-1].startswith("n_")
        if not hinted:
            continue
        if isinstance(value, (list, tuple)) and 0 < len(value) <= 6 and all(is_number(v) for v in value):
            spatial = any(h in parts[-1] for h in ("shape", "size", "spacing", "patch"))
            facts.append((path, ("×" if spatial else ", ").join(f"{v:g}" for v in value)))
        elif is_number(value) or isinstance(value, str):
            facts.append((path, f"{value:g}" if is_number(value) else value))
    return facts
