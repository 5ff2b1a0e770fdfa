"""report.html: one self-contained page (inline CSS, PNGs as base64 data URIs, no JavaScript).

Every piece of text from the study folder goes through `html.escape`; the only unescaped markup
is built here. Numbers that are missing or NaN read "n/a"; statistics are never shown without
their n, p-value and interval.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from typing import Any

from taskalign.report.answer import answer_sections, figure_html
from taskalign.report.cells import cell_summaries
from taskalign.report.markup import Raw, _e, _int, _mean_ci, _num, _table, _with_p
from taskalign.report.stat_tables import correlation_sections, paired_section
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
    further = [figure_html(p) for p in plots if p.group in ("further", "layers")]
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>{_e(str(study.study_dir.resolve()))} · report built "
        f"{_e(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>",
        _preset_warning(study.preset),
        *answer_sections(study, plots),
        _overview(study),
        _start_weights_section(study.summary),
        correlation_sections(study.summary),
        paired_section(study.summary, "paired_vs_scratch", "the same architecture trained from scratch"),
        paired_section(study.summary),
        layer_section(read_layer_profiles(study.study_dir, _legacy_n(study))),
        "<h2>Further figures</h2>\n" + "\n".join(further) if further else "",
        _results_section(study),
        _timing_section(study.timing),
        _excluded_section(study),
        _notes_section(study.summary),
        _versions_section(study),
        _config_section(study.config),
    ]
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _legacy_n(study: StudyData) -> int | None:
    return study.regimes[0] if study.legacy_layout and study.regimes else None


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
            f"{len(s.rows)} result row(s) (encoder × task × labelled-set size × seed). Labelled training "
            f"cases per run: {_e(', '.join(str(n) for n in s.regimes) or 'n/a')}.")
    if s.legacy_layout:
        text += (" This folder was written before labelled-set sizes existed (cells/&lt;model&gt;/&lt;task&gt;/"
                 "seed&lt;s&gt;/); it is read as one size, the number of training cases in splits.json.")
    if s.splits:
        counts = " / ".join(f"{len(s.splits.get(k) or [])} {k}" for k in ("train", "val", "test"))
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
    return f"<h2 id='what-was-run'>What was run</h2>\n<p id='overview'>{text}</p>\n" + _setup_table(s)


def _setup_table(study: StudyData) -> str:
    """Steps, epochs and learning rates per model, from the runs' metrics.json."""
    by_model: dict[str, list[dict]] = {}
    for (model, _, _, _), rec in sorted(study.metrics.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3])):
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
    headers = ["task", "encoder", "labelled cases", "seed", "metric", "value", "specialised", "scratch", "RPG %",
               "gain over scratch", "conv. epoch fine-tuned", "conv. epoch scratch", "conv. epoch specialised",
               "D2P (p)", "D2R (p)", "D2S (p)", "D2P/D2R", "CKA pre / rand / scratch"]
    rows = []
    for r in sorted(study.rows, key=lambda r: (study.tasks.index(r["task"]), r["encoder"], r["n_train"] or 0,
                                               r["seed"] or 0)):
        conv = _int(r.get("convergence_epoch"))
        if r.get("convergence_censored") and conv != "n/a":
            conv = f">{conv}"
        rows.append([r["task"], r["encoder"], _int(r["n_train"]), _int(r["seed"]), _metric_name(r), _num(r["value"]),
                     _num(r["specialised_value"]), _num(r["scratch_value"]), _num(r["rpg"], "+.2f"),
                     _num(r["gain_over_scratch"], "+.4g"), conv, _int(r.get("scratch_convergence_epoch")),
                     _int(r.get("specialised_convergence_epoch")), _with_p(r["d2p"], r["d2p_p"]),
                     _with_p(r["d2r"], r["d2r_p"]), _with_p(r["d2s"], r["d2s_p"]), _num(r["d2p_d2r_ratio"]),
                     " / ".join(_num(r[k], ".3f") for k in ("cka_pretrained", "cka_random", "cka_scratch"))])
    out = ("<h2>Results</h2>\n<p class='small'>One row per encoder × task × labelled-set size × seed "
           "(results.csv). Value, "
           "specialised and scratch are the primary test metric. RPG = 100 × (value − specialised) / "
           "|specialised|, sign flipped for lower-is-better metrics. Convergence epoch: first epoch whose "
           "validation metric reaches 95 % of the best value any model reached on that task and seed; "
           "“&gt;N” means never reached in N epochs (censored). D2x = MMD² of the fine-tuned features to "
           "the pretrained (P), random-init (R) and scratch-trained (S) features of the same encoder, "
           "with permutation p-values; n/a = not available.</p>\n")
    out += _table("results", headers, rows, left=(0, 1, 4))
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
        rows.append([c["task"], c["encoder"], _int(c["n_train"]), c["n_seeds"]] + cells)
    headers = ["task", "encoder", "labelled cases", "seeds", "value", "specialised", "scratch", "RPG %", "conv. epoch",
               "D2P", "D2R", "D2S", "CKA pre"]
    return ("<h3>Mean over seeds</h3>\n<p class='small'>mean ± half width of the 95 % t interval over "
            "seeds (n/a with fewer than two finite values); “censored”: in at least one seed the "
            "convergence target was never reached and the last epoch was counted.</p>\n" + _table("results-mean", headers, rows, left=(0, 1)))


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
