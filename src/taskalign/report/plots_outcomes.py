"""The answer's figures: the pretraining gain per task and encoder, and label-efficiency curves.

Drawn like `report.plots` (matplotlib's Agg canvas, notes at the foot, atomic PNG writes).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taskalign.report.cells import cell_summaries
from taskalign.report.efficiency import CurvePoint, has_interval
from taskalign.report.load import is_number
from taskalign.report.plots import (AXIS_LABELS, DPI, SPECIALISED_COLOR, _finish, encoder_colors,
                                    metric_label)


def plot_pretraining_gain(rows: list[dict[str, Any]], paired_vs_scratch: list[dict[str, Any]],
                          out_path: Path) -> Figure:
    """Two rows of panels, one column per task. Top: fine-tuned − scratch, the paired per-case
    difference of summary.json's `paired_vs_scratch` (95 % case-bootstrap interval); where a cell
    has no paired record, the seed mean of results.csv's `gain_over_scratch` (open marker, 95 % t
    interval over seeds). Bottom: RPG vs the specialised model, seed mean with its 95 % t interval
    and the seeds as dots when there are two or more. x: labelled-set size, one marker per encoder."""
    cells = cell_summaries(rows, ["rpg", "gain_over_scratch"])
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    encoders = list(dict.fromkeys(c["encoder"] for c in cells))
    regimes = sorted({c["n_train"] for c in cells if c["n_train"] is not None}) or [None]
    colors = encoder_colors(encoders)
    fig = Figure(figsize=(2.9 * max(len(tasks), 1) + 1.6, 6.4), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    axes = np.array(fig.subplots(2, max(len(tasks), 1), squeeze=False))   # (2, tasks)
    paired = {(p.get("encoder"), p.get("task"), p.get("n_train")): p for p in paired_vs_scratch}
    width = 0.7 / max(len(encoders), 1)
    notes, fallback, missing = [], [], []
    for col, task in enumerate(tasks):
        top, bottom = axes[0, col], axes[1, col]
        for j, enc in enumerate(encoders):
            for i, n in enumerate(regimes):
                cell = next((c for c in cells if (c["encoder"], c["task"], c["n_train"]) == (enc, task, n)), None)
                if cell is None:
                    continue
                rec = paired.get((enc, task, n)) or (paired.get((enc, task, None)) if len(regimes) == 1 else None)
                _gain_cell(top, bottom, i - 0.35 + width * (j + 0.5), cell, rec, rows, colors[enc], fallback, missing)
        first = next(c for c in cells if c["task"] == task)
        for ax in (top, bottom):
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(regimes)), [f"n={n}" if n is not None else "n/a" for n in regimes], fontsize=8)
            ax.set_xlim(-0.5, len(regimes) - 0.5)
            ax.grid(axis="y", alpha=0.3)
        top.set_title(task.replace("_", " "), fontsize=9)
        top.set_ylabel(f"fine-tuned − scratch\n[{metric_label(first['metric'], None)}]", fontsize=8)
        bottom.set_ylabel(AXIS_LABELS["rpg"], fontsize=8)
        bottom.set_xlabel("labelled training cases", fontsize=8)
    for enc in encoders:
        axes[0, 0].plot([], [], "o", color=colors[enc], label=enc)
    if fallback:
        axes[0, 0].plot([], [], "o", mfc="white", color="grey", label="seed mean of gain_over_scratch")
        notes.append("no paired per-case record in summary.json for " + ", ".join(fallback)
                     + ": open marker = seed mean of results.csv's gain_over_scratch, 95 % t interval over seeds")
    if missing:
        notes.append("n/a (NaN or missing): " + ", ".join(missing))
    n_seeds = max((c["n_seeds"] for c in cells), default=0)
    fig.suptitle("Pretraining gain per task and encoder\nTop: fine-tuned − scratch (paired over test cases, "
                 "95 % bootstrap CI; > 0: pretraining helped). Bottom: RPG vs the specialised model ("
                 + ("mean, 95 % t CI over seeds, dots = seeds)" if n_seeds > 1 else "one seed, no error bars)"),
                 fontsize=9)
    fig.legend(loc="outside right upper", fontsize=8)
    return _finish(fig, notes, out_path)


def _gain_cell(top, bottom, x: float, cell: dict, rec: dict | None, rows: list[dict[str, Any]], color,
               fallback: list[str], missing: list[str]) -> None:
    """One encoder at one labelled-set size of one task: its paired gain (top; the seed mean of
    gain_over_scratch, open marker, when there is no paired record) and its RPG (bottom)."""
    name = f"{cell['encoder']}/{cell['task']}/n{cell['n_train']}"
    if rec is not None and is_number(rec.get("mean_difference")):
        sign = -1.0 if rec.get("higher_is_better") is False else 1.0
        mid, lo, hi = (sign * _f(rec.get(k)) for k in ("mean_difference", "ci_low", "ci_high"))
        _point(top, x, mid, min(lo, hi), max(lo, hi), color, filled=True)
    elif cell["gain_over_scratch"].finite:
        s = cell["gain_over_scratch"]
        _point(top, x, s.mean, s.mean - s.ci95, s.mean + s.ci95, color, filled=False)
        fallback.append(name)
    else:
        missing.append(f"gain {name}")
    s = cell["rpg"]
    if not s.finite:
        missing.append(f"RPG {name}")
        return
    _point(bottom, x, s.mean, s.mean - s.ci95, s.mean + s.ci95, color, filled=True)
    if cell["n_seeds"] > 1:
        key = (cell["encoder"], cell["task"], cell["n_train"])
        seeds = [r["rpg"] for r in rows if (r["encoder"], r["task"], r["n_train"]) == key and is_number(r["rpg"])]
        bottom.plot([x] * len(seeds), seeds, ".", color="black", ms=3, alpha=0.5)


def plot_label_efficiency(points: Sequence[CurvePoint], encoders: Sequence[str], metrics: dict[str, tuple[str, Any]],
                          interval: str, out_path: Path) -> Figure:
    """One panel per task: the test metric against labelled training cases (log x) for each
    fine-tuned encoder (solid), its scratch twin (dashed, same colour) and the specialised model
    (dark, dash-dot); shaded: the points' interval (`interval` names it)."""
    tasks = list(dict.fromkeys(p.task for p in points))
    colors = encoder_colors(encoders)
    styles = [(e, colors[e], "-", "o", f"{e} (fine-tuned)") for e in encoders]
    styles += [(f"{e}-scratch", colors[e], "--", "s", f"{e}-scratch") for e in encoders]
    styles.append(("specialised", SPECIALISED_COLOR, "-.", "^", "specialised (from scratch)"))
    n_cols = min(len(tasks), 3) or 1
    n_rows = math.ceil(len(tasks) / n_cols) or 1
    fig = Figure(figsize=(3.6 * n_cols + 2.2, 3.2 * n_rows + 0.6), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    axes = np.array(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    no_interval = []
    for ax, task in zip(axes, tasks):
        for model, color, line, marker, label in styles:
            pts = sorted((p for p in points if p.task == task and p.model == model and is_number(p.mean)),
                         key=lambda p: p.n_train)
            if not pts:
                continue
            xs = [p.n_train for p in pts]
            ax.plot(xs, [p.mean for p in pts], line, marker=marker, ms=4, color=color, lw=1.6,
                    label=label if task == tasks[0] else None)
            shaded = [p for p in pts if has_interval(p)]
            if shaded:
                ax.fill_between([p.n_train for p in shaded], [p.low for p in shaded], [p.high for p in shaded],
                                color=color, alpha=0.12, lw=0)
            no_interval += [f"{model}/{task}/n{p.n_train}" for p in pts if not has_interval(p)]
        metric, higher = metrics.get(task, ("", None))
        ax.set_xscale("log")
        ticks = sorted({p.n_train for p in points if p.task == task})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_xlabel("labelled training cases (log scale)", fontsize=8)
        ax.set_ylabel(f"test {metric_label(metric, higher)}", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(f"Label efficiency: test metric vs labelled cases\n(shaded: {interval})", fontsize=9)
    fig.legend(loc="outside right upper", fontsize=8)
    notes = [f"no interval for: {', '.join(no_interval)}"] if no_interval else []
    return _finish(fig, notes, out_path)


def _point(ax: Any, x: float, mid: float, lo: float, hi: float, color: str, filled: bool) -> None:
    """A marker at `mid` with an error bar [lo, hi] where both bounds are finite."""
    err = None
    if is_number(lo) and is_number(hi):
        err = [[max(mid - lo, 0.0)], [max(hi - mid, 0.0)]]
    ax.errorbar(x, mid, yerr=err, fmt="o", ms=6, color=color, mfc=color if filled else "white",
                ecolor=color, capsize=3, elinewidth=1)


def _f(x: Any) -> float:
    return float(x) if is_number(x) else math.nan
