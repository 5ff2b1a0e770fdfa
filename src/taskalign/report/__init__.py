"""The report stage: PNG plots and one self-contained report.html from a finished study folder.

    from taskalign.report import build_report
    html_path = build_report("runs/quick")   # writes runs/quick/plots/*.png and runs/quick/report.html
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taskalign import files
from taskalign.report.html import render_html
from taskalign.report.layers import plot_layer_profiles, read_layer_profiles
from taskalign.report.load import NotAFinishedStudy, StudyData, load_study
from taskalign.report.efficiency import label_efficiency
from taskalign.report.plots import (PlotFile, correlation_text, plot_alignment_scatter, plot_drift_bars,
                                    plot_learning_curves)
from taskalign.report.plots_outcomes import plot_label_efficiency, plot_pretraining_gain

__all__ = ["build_report", "write_plots", "load_study", "StudyData", "NotAFinishedStudy", "PlotFile"]


def build_report(study_dir: str | Path) -> Path:
    """Write `study_dir/plots/*.png` and `study_dir/report.html`; return the HTML path.

    Raises `NotAFinishedStudy` (a FileNotFoundError) naming the missing file when `study_dir`
    lacks config.json, results.csv or summary.json."""
    study = load_study(study_dir)
    plots = write_plots(study, study.study_dir / "plots")
    html_path = study.study_dir / "report.html"
    files.write_text(html_path, render_html(study, plots))
    return html_path


def write_plots(study: StudyData, plots_dir: Path) -> list[PlotFile]:
    """Every figure of the report, in the order the report shows them; `PlotFile.group` names the
    section that shows each one."""
    plots_dir = Path(plots_dir)
    several_sizes = len(study.regimes) > 1
    point = ("one encoder × task × labelled-set size cell (mean over seeds)" if several_sizes
             else "one encoder × task cell (mean over seeds)")
    spread = "error bars ±1 SD over seeds" if len(study.seeds) > 1 else "one seed, no error bars"
    return _answer_plots(study, plots_dir, point, spread) + _further_plots(study, plots_dir, point, spread)


def _answer_plots(study: StudyData, plots_dir: Path, point: str, spread: str) -> list[PlotFile]:
    """The figures of the report's opening: pretraining gain, D2P against gain and RPG, label efficiency."""
    summary_corr = study.summary.get("correlations") or []
    plots = []
    path = plots_dir / "pretraining_gain.png"
    plot_pretraining_gain(study.rows, study.summary.get("paired_vs_scratch") or [], path)
    plots.append(PlotFile(path, "Pretraining gain per task and encoder",
                          "Top row: fine-tuned − scratch (same architecture, random init, trained identically) "
                          "on the test split in the task's metric units, positive = pretraining helped. A point "
                          "is one encoder at one labelled-set size; its bar is the 95 % bootstrap interval over "
                          "test cases of the paired per-case difference (summary.json paired_vs_scratch: each "
                          "case averaged over seeds first; AUROC: difference of the two AUROCs). An open marker "
                          "marks a cell without a paired record: seed mean of results.csv's gain_over_scratch "
                          "with its 95 % t interval over seeds. Bottom row: RPG = 100 × (fine-tuned − "
                          "specialised) / |specialised|, sign flipped for lower-is-better metrics; a point is "
                          "the mean over seeds, its bar the 95 % t interval over seeds (two seeds or more; dots "
                          "are the seeds).", "gain"))
    for outcome, name, what in (("gain_over_scratch", "d2p_vs_gain.png", "pretraining gain (fine-tuned − scratch)"),
                                ("rpg", "d2p_vs_rpg.png", "relative performance gain (RPG)")):
        path = plots_dir / name
        corr = find_correlation(summary_corr, "d2p", outcome)
        plot_alignment_scatter(study.rows, "d2p", outcome, corr, path)
        plots.append(PlotFile(path, f"D2P vs {what}",
                              f"Each point is {point}; {spread}. Smaller D2P: the features moved less from "
                              "their pretrained state during fine-tuning. Dashed line: least-squares fit "
                              f"through the points. Pooled over all cells: {correlation_text(corr)}; the 95 % "
                              "interval resamples the cells (and, within each, seeds and test cases), p is "
                              "the permutation test on the cell means (summary.json correlations)."
                              + (" The gain is in each task's own metric units, so the scatter mixes units "
                                 "across tasks; Spearman ρ uses ranks only." if outcome == "gain_over_scratch"
                                 else ""), "alignment"))
    if len(study.regimes) > 1:
        points, interval = label_efficiency(study)
        metrics = {r["task"]: (r["metric"], r["higher_is_better"]) for r in study.rows}
        path = plots_dir / "label_efficiency.png"
        plot_label_efficiency(points, study.encoders, metrics, interval, path)
        plots.append(PlotFile(path, "Label efficiency",
                              "Test metric against the number of labelled training cases (log scale), one panel "
                              "per task. A point is one model at one labelled-set size: each encoder fine-tuned "
                              "(solid), the same architecture from scratch (dashed) and the task's specialised "
                              f"model (dash-dot), mean over seeds. Shaded: the {interval}.", "efficiency"))
    return plots


def _further_plots(study: StudyData, plots_dir: Path, point: str, spread: str) -> list[PlotFile]:
    """Layer profile, D2P against convergence, drift bars and learning curves."""
    summary_corr = study.summary.get("correlations") or []
    plots = []
    profiles = read_layer_profiles(study.study_dir, study.regimes[0] if study.legacy_layout and study.regimes else None)
    if profiles:
        plots.append(plot_layer_profiles(profiles, plots_dir / "layer_profile.png"))
    path = plots_dir / "d2p_vs_convergence.png"
    plot_alignment_scatter(study.rows, "d2p", "convergence_epoch",
                           find_correlation(summary_corr, "d2p", "convergence_epoch"), path)
    plots.append(PlotFile(path, "D2P vs convergence epoch",
                          f"Each point is {point}; {spread}. Open marker: in at least one seed the run never "
                          "reached the convergence target (censored at its last epoch). "
                          + correlation_text(find_correlation(summary_corr, "d2p", "convergence_epoch")) + "."))
    plot_drift_bars(study.rows, plots_dir / "drift_bars.png")
    plots.append(PlotFile(plots_dir / "drift_bars.png", "D2P, D2R and D2S per task",
                          "MMD² between the fine-tuned encoder's probe features and the same encoder "
                          "pretrained (D2P), randomly initialised (D2R) and trained from scratch (D2S). A bar "
                          "is one encoder (at one labelled-set size) on one task, mean over seeds; its error "
                          "bar the 95 % t interval over seeds (two seeds or more)."))
    largest = study.regimes[-1] if study.regimes else None
    for task in study.tasks:
        row = next(r for r in study.rows if r["task"] == task)
        path = plots_dir / f"curves_{_safe(task)}.png"
        plot_learning_curves(study.curves, task, largest, study.encoders, row["metric"], row["higher_is_better"],
                             path)
        plots.append(PlotFile(path, f"Learning curves: {task}",
                              "Validation metric per epoch of each fine-tuned encoder, the same architecture "
                              "from scratch, and the specialised model, at the largest labelled-set size "
                              f"({largest if largest is not None else 'n/a'} cases); a line is the mean over "
                              "seeds, the band ±1 SD over seeds (two seeds or more)."))
    return plots


def find_correlation(correlations: list[dict[str, Any]], alignment: str, outcome: str) -> dict | None:
    """The summary.json record for (alignment, outcome), or None."""
    return next((c for c in correlations
                 if c.get("alignment") == alignment and c.get("outcome") == outcome), None)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
