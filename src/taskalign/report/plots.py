"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no global backend switch).

Every `plot_*` function takes loaded study data (results rows, curves, a correlation record of
summary.json) and an output path, writes a PNG there and returns the `Figure`. NaN values are
skipped and named in a note at the foot of the figure; with one seed there are no bands or
error bars, and the figure says so.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from taskalign import files
from taskalign.report.cells import cell_summaries, seed_stats
from taskalign.report.load import RunKey, is_number

DPI = 110
SPECIALISED_COLOR = "#333333"
DRIFT_COLORS = {"d2p": "#4c72b0", "d2r": "#dd8452", "d2s": "#55a868"}
DRIFT_HATCH = {"d2p": "", "d2r": "//", "d2s": ".."}
DRIFT_LEGEND = {"d2p": "D2P: vs pretrained", "d2r": "D2R: vs random init", "d2s": "D2S: vs from scratch"}
METRIC_LABELS = {"psnr": "PSNR (dB)", "auroc": "AUROC (0–1)", "dice": "Dice (0–1)",
                 "ssim": "SSIM (0–1)", "ncc": "NCC (−1 to 1)", "balanced_accuracy": "balanced accuracy (0–1)",
                 "ap": "average precision (0–1)", "mae": "MAE (target units)"}
AXIS_LABELS = {
    "d2p": "D2P = MMD²(fine-tuned, pretrained features)  [unitless]",
    "d2r": "D2R = MMD²(fine-tuned, random-init features)  [unitless]",
    "d2s": "D2S = MMD²(fine-tuned, scratch features)  [unitless]",
    "d2p_d2r_ratio": "D2P / D2R  [ratio]",
    "cka_pretrained": "CKA(fine-tuned, pretrained)  [0–1]",
    "rpg": "RPG vs specialised model  [%]",
    "gain_over_scratch": "fine-tuned − scratch  [task's metric units; > 0: pretraining helped]",
    "convergence_epoch": "convergence epoch (95 % of best any model reached)  [epochs]",
}
SHORT = {"d2p": "D2P", "d2r": "D2R", "d2s": "D2S", "d2p_d2r_ratio": "D2P/D2R",
         "cka_pretrained": "CKA", "rpg": "RPG",
         "gain_over_scratch": "gain over scratch", "convergence_epoch": "convergence epoch"}


@dataclass(frozen=True)
class PlotFile:
    """A written figure with the title and caption the report shows beside it."""

    path: Path
    title: str
    caption: str
    group: str = "further"   # the report section that shows it: gain, alignment, efficiency, layers, further


def encoder_colors(encoders: Sequence[str]) -> dict[str, str]:
    """A fixed colour per encoder (tab10 order), shared by every figure of a report."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    return {enc: palette[i % len(palette)] for i, enc in enumerate(encoders)}


def metric_label(metric: str, higher_is_better: bool | None) -> str:
    label = METRIC_LABELS.get(metric.lower(), metric)
    if higher_is_better is None:
        return label
    return f"{label}, {'higher' if higher_is_better else 'lower'} is better"


def plot_learning_curves(curves: dict[RunKey, list[dict]], task: str, n_train: int | None, encoders: Sequence[str],
                         metric: str, higher_is_better: bool | None, out_path: Path) -> Figure:
    """Validation metric vs epoch on `task` with `n_train` labelled cases: each encoder fine-tuned (solid), the same architecture
    from scratch (dashed, same colour) and the specialised model (dark, dash-dot). Mean over the
    seeds present at each epoch, with a ±1 SD band where two or more seeds have a value."""
    fig, ax = _figure((8.0, 4.4))
    colors = encoder_colors(encoders)
    models = [(e, colors[e], "-", f"{e} (fine-tuned)") for e in encoders]
    models += [(f"{e}-scratch", colors[e], "--", f"{e}-scratch") for e in encoders]
    models.append(("specialised", SPECIALISED_COLOR, "-.", "specialised (from scratch)"))
    notes, n_nan, max_seeds = [], 0, 0
    for model, color, style, label in models:
        runs = [pts for (m, t, n, _), pts in curves.items() if m == model and t == task and n == n_train]
        if not runs:
            notes.append(f"no curve.jsonl for {model}")
            continue
        epochs, mean, sd, nan_here = _mean_curve(runs)
        n_nan += nan_here
        max_seeds = max(max_seeds, len(runs))
        ax.plot(epochs, mean, style, color=color, lw=1.8, label=label, marker="o", ms=3)
        band = np.isfinite(sd)
        if band.any():
            ax.fill_between(epochs, mean - np.where(band, sd, 0), mean + np.where(band, sd, 0),
                            where=band, color=color, alpha=0.15, lw=0)
    if n_nan:
        notes.append(f"{n_nan} epoch value(s) n/a (NaN) not drawn")
    ax.set_xlabel("epoch  [1-based]")
    ax.set_ylabel(f"validation {metric_label(metric, higher_is_better)}")
    spread = "mean ± 1 SD over seeds" if max_seeds > 1 else "one seed, no band"
    ax.set_title(f"Learning curves: {task}, {n_train if n_train is not None else 'n/a'} labelled cases  ({spread})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", fontsize=8)
    return _finish(fig, notes, out_path)


def plot_alignment_scatter(rows: list[dict[str, Any]], x: str, y: str,
                           correlation: dict[str, Any] | None, out_path: Path) -> Figure:
    """One point per (encoder, task, labelled-set size) cell (mean over seeds; ±1 SD bars with
    several seeds), coloured by encoder and labelled by task (and size, with several sizes), with a least-squares line through the points and
    the study's Spearman ρ (CI, p, n from summary.json) in the title. For convergence, an open
    marker means at least one seed never reached the target (censored at the last epoch)."""
    fig, ax = _figure((8.0, 5.0))
    cells = cell_summaries(rows, [x, y])
    encoders = list(dict.fromkeys(c["encoder"] for c in cells))
    colors = encoder_colors(encoders)
    several_sizes = len({c["n_train"] for c in cells}) > 1
    shown, skipped, labels = [], [], []
    for cell in cells:
        cx, cy = cell[x], cell[y]
        if not (cx.finite and cy.finite):
            bad = [SHORT.get(n, n) for n, s in ((x, cx), (y, cy)) if not s.finite]
            skipped.append(f"{cell['encoder']}/{cell['task']}/n{cell['n_train']} ({', '.join(bad)} n/a)")
            continue
        color = colors[cell["encoder"]]
        open_marker = y == "convergence_epoch" and cell["censored_any"]
        ax.errorbar(cx.mean, cy.mean, xerr=_nan0(cx.sd), yerr=_nan0(cy.sd), fmt="o", ms=8,
                    color=color, mfc="white" if open_marker else color, ecolor=color, elinewidth=0.8,
                    alpha=0.9)
        text = f"{cell['task']} n{cell['n_train']}" if several_sizes else cell["task"]
        label = ax.annotate(text, (cx.mean, cy.mean), xytext=(6, 4), textcoords="offset points",
                            fontsize=8, color=color, arrowprops={"arrowstyle": "-", "color": color,
                                                                 "lw": 0.6, "shrinkA": 1, "shrinkB": 5})
        label.set_in_layout(False)  # the axes keep their size; labels are placed inside them below
        labels.append(label)
        shown.append((cx.mean, cy.mean))
    for enc in encoders:  # legend entries, one per encoder
        ax.plot([], [], "o", color=colors[enc], label=enc)
    if len(shown) >= 2 and len({p[0] for p in shown}) >= 2:
        px, py = np.array(shown).T
        slope, intercept = np.polyfit(px, py, 1)
        grid = np.linspace(px.min(), px.max(), 50)
        ax.plot(grid, slope * grid + intercept, "k--", lw=1, label=f"least squares (slope {slope:.3g})")
    if y == "convergence_epoch" and any(c["censored_any"] for c in cells):
        ax.plot([], [], "o", mfc="white", color="grey", label="censored (never reached)")
    ax.margins(x=0.15, y=0.1)  # room for the task labels of the outermost points
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    if y in ("rpg", "gain_over_scratch"):
        ax.axhline(0, color="grey", lw=0.8)
    n_seeds = max((c["n_seeds"] for c in cells), default=0)
    ax.set_title(f"{SHORT.get(x, x)} vs {SHORT.get(y, y)}, one point per encoder × task"
                 f"{' × size' if several_sizes else ''} cell\n"
                 f"({'mean ± 1 SD over seeds' if n_seeds > 1 else 'one seed'})\n"
                 + correlation_text(correlation), fontsize=9)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    notes = [f"not shown: {'; '.join(skipped)}"] if skipped else []
    return _finish(fig, notes, out_path, labels=(ax, labels))


def correlation_text(corr: dict[str, Any] | None) -> str:
    """'Spearman ρ = −0.71 [95 % CI −0.93, −0.20], p = 0.021, n = 10' (never a bare coefficient).
    The interval resamples the cells (`spearman_ci_cells`) where summary.json has it."""
    if not corr:
        return "Spearman ρ: not in summary.json"
    lo, hi = (list(corr.get("spearman_ci_cells") or corr.get("spearman_ci") or []) + [math.nan, math.nan])[:2]
    return (f"Spearman ρ = {_g(corr.get('spearman'))} [95 % CI {_g(lo)}, {_g(hi)}], "
            f"p = {_g(corr.get('spearman_p'))}, n = {corr.get('n', 'n/a')}")


def plot_drift_bars(rows: list[dict[str, Any]], out_path: Path) -> Figure:
    """D2P, D2R and D2S of each encoder (and labelled-set size, when there are several), one panel
    per task (shared y axis: each encoder's kernel is fixed across tasks, so values compare across
    panels); 95 % CI bars with several seeds."""
    names = ("d2p", "d2r", "d2s")
    cells = cell_summaries(rows, names)
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    sizes = sorted({c["n_train"] for c in cells if c["n_train"] is not None})
    order = list(dict.fromkeys(c["encoder"] for c in cells))
    groups = sorted(dict.fromkeys((c["encoder"], c["n_train"]) for c in cells),
                    key=lambda g: (order.index(g[0]), g[1] if g[1] is not None else -1))   # (encoder, n_train)
    encoders = [f"{e} n{n}" if len(sizes) > 1 else e for e, n in groups]
    panel_width = 0.45 * len(groups) + 1.6
    fig = Figure(figsize=(panel_width * max(len(tasks), 1) + 1.5, 4.2), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, max(len(tasks), 1), sharey=True))
    width, missing = 0.8 / len(names), []
    for ax, task in zip(axes, tasks):
        for i, (enc, n_train) in enumerate(groups):
            cell = next((c for c in cells if (c["encoder"], c["task"], c["n_train"]) == (enc, task, n_train)), None)
            for j, name in enumerate(names):
                xpos = i - 0.4 + width * (j + 0.5)
                s = cell[name] if cell else seed_stats([])
                if not s.finite:
                    ax.text(xpos, 0.02, "n/a", ha="center", va="bottom", fontsize=8, rotation=90,
                            transform=ax.get_xaxis_transform())
                    missing.append(f"{enc}/{task}/n{n_train} {SHORT[name]}")
                    continue
                ax.bar(xpos, s.mean, width * 0.9, color=DRIFT_COLORS[name], hatch=DRIFT_HATCH[name],
                       edgecolor="white", yerr=s.ci95 if math.isfinite(s.ci95) else None,
                       error_kw={"capsize": 2, "lw": 0.8})
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(encoders)), encoders, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(encoders) - 0.5)
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("MMD² between feature states  [unitless]")
    handles = [Patch(facecolor=DRIFT_COLORS[n], hatch=DRIFT_HATCH[n], edgecolor="white", label=DRIFT_LEGEND[n])
               for n in names]
    n_seeds = max((c["n_seeds"] for c in cells), default=0)
    fig.suptitle("Feature drift during fine-tuning per task and encoder ("
                 + ("mean, 95 % CI over seeds)" if n_seeds > 1 else "one seed, no error bars)"), fontsize=10)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    notes = [f"n/a (NaN): {', '.join(missing)}"] if missing else []
    return _finish(fig, notes, out_path)


def _mean_curve(runs: list[list[dict]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Align runs (one per seed) by epoch -> (epochs, mean, sd or NaN where < 2 seeds, NaN count)."""
    epochs = sorted({p["epoch"] for pts in runs for p in pts})
    index = {e: k for k, e in enumerate(epochs)}
    table = np.full((len(runs), len(epochs)), np.nan)  # (seeds, epochs)
    n_nan = 0
    for s, pts in enumerate(runs):
        for p in pts:
            value = p["val_metric"]
            if is_number(value):
                table[s, index[p["epoch"]]] = value
            else:
                n_nan += 1
    counts = np.isfinite(table).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, np.nansum(table, axis=0) / np.maximum(counts, 1), np.nan)
        sd = np.array([np.nanstd(table[:, k], ddof=1) if counts[k] > 1 else np.nan
                       for k in range(len(epochs))])
    return np.array(epochs), mean, sd, n_nan


def _figure(size: tuple[float, float]) -> tuple[Figure, Any]:
    fig = Figure(figsize=size, layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _reserve_notes(fig: Figure, notes: list[str]) -> None:
    """Write the notes at the foot of the figure, with layout space reserved so they cover nothing."""
    if not notes:
        return
    text = "\n".join(textwrap.fill("Note: " + n, 150) for n in notes)
    lines = text.count("\n") + 1
    foot = min(0.3, (0.12 + 0.17 * lines) / fig.get_figheight())
    fig.get_layout_engine().set(rect=(0, foot, 1, 1 - foot))
    fig.text(0.01, 0.01, text, fontsize=7.5, style="italic", color="#7a3b00", va="bottom")


def _spread_labels(fig: Figure, ax: Any, labels: list[Any]) -> None:
    """Move each point label to the first nearby spot where it overlaps no point and no earlier
    label (a greedy search over eight offsets, in display pixels after the layout is done)."""
    if not labels:
        return
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [Bbox.from_bounds(*(ax.transData.transform(a.xy) - 5), 10, 10) for a in labels]
    candidates = [((6, 4), "left"), ((6, -12), "left"), ((-6, 4), "right"), ((-6, -12), "right"),
                  ((0, 9), "center"), ((0, -18), "center"), ((10, 16), "left"), ((-10, -26), "right")]
    for ann in labels:
        best, best_hits = candidates[0], None
        for offset, ha in candidates:
            ann.xyann = offset
            ann.set_ha(ha)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            hits = sum(box.overlaps(t) for t in taken) + (0 if inside else 100)
            if best_hits is None or hits < best_hits:
                best, best_hits = (offset, ha), hits
            if hits == 0:
                break
        ann.xyann = best[0]
        ann.set_ha(best[1])
        ann.arrow_patch.set_visible(candidates.index(best) >= 4)  # a leader line only when set apart
        taken.append(Text.get_window_extent(ann, renderer))


def _finish(fig: Figure, notes: list[str], out_path: Path, labels: tuple[Any, list] | None = None) -> Figure:
    """Add the notes at the foot, place the point labels (axes, annotations) if any, and save the
    PNG atomically (temporary name, then rename)."""
    _reserve_notes(fig, notes)
    if labels:
        _spread_labels(fig, *labels)
    files.atomic_write(Path(out_path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return fig


def _nan0(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _g(x: Any) -> str:
    return f"{x:.3g}" if is_number(x) else "n/a"
