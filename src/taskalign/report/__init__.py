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
from taskalign.report.plots import (PlotFile, plot_alignment_scatter, plot_drift_bars, plot_learning_curves,
                                    plot_rpg_bars)

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
    """Every figure of the report, in the order the report shows them."""
    plots_dir = Path(plots_dir)
    summary_corr = study.summary.get("correlations") or []
    plots = []
    for outcome, name, what in (("rpg", "d2p_vs_rpg.png", "relative performance gain"),
                                ("convergence_epoch", "d2p_vs_convergence.png", "convergence epoch")):
        path = plots_dir / name
        plot_alignment_scatter(study.rows, "d2p", outcome, find_correlation(summary_corr, "d2p", outcome), path)
        plots.append(PlotFile(path, f"D2P vs {what}",
                              "Each point is one encoder × task cell (mean over seeds). Smaller D2P means "
                              "the features moved less from their pretrained state during fine-tuning. "
                              "Dashed line: least-squares fit through the points; the Spearman statistics "
                              "in the title are the study's, from summary.json."))
    plot_rpg_bars(study.rows, plots_dir / "rpg_bars.png")
    plots.append(PlotFile(plots_dir / "rpg_bars.png", "RPG per task and encoder",
                          "RPG = 100 × (fine-tuned − specialised) / |specialised| on the test split "
                          "(sign flipped for lower-is-better metrics); above zero the VFM beats the "
                          "task's specialised model."))
    plot_drift_bars(study.rows, plots_dir / "drift_bars.png")
    plots.append(PlotFile(plots_dir / "drift_bars.png", "D2P, D2R and D2S per task",
                          "MMD² between the fine-tuned encoder's probe features and the same encoder "
                          "pretrained (D2P), randomly initialised (D2R) and trained from scratch (D2S)."))
    profiles = read_layer_profiles(study.study_dir)
    if profiles:
        plots.append(plot_layer_profiles(profiles, plots_dir / "layer_profile.png"))
    for task in study.tasks:
        row = next(r for r in study.rows if r["task"] == task)
        path = plots_dir / f"curves_{_safe(task)}.png"
        plot_learning_curves(study.curves, task, study.encoders, row["metric"], row["higher_is_better"], path)
        plots.append(PlotFile(path, f"Learning curves: {task}",
                              "Validation metric per epoch of each fine-tuned encoder, the same "
                              "architecture from scratch, and the specialised model."))
    return plots


def find_correlation(correlations: list[dict[str, Any]], alignment: str, outcome: str) -> dict | None:
    """The summary.json record for (alignment, outcome), or None."""
    return next((c for c in correlations
                 if c.get("alignment") == alignment and c.get("outcome") == outcome), None)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
