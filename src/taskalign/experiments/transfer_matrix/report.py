"""The transfer matrix as Markdown (matrix.md) and heatmaps (matrix_<encoder>.png)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from taskalign.experiments.transfer_matrix.config import MatrixConfig

SHOWN = (("gain", "gain over scratch (target metric)"), ("rpg", "RPG vs specialised (%)"), ("d2p", "D2P (MMD²)"))


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:+.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(x) + " |" for x in lines]


def markdown(summary: dict[str, Any], rows: list[dict[str, Any]], mcfg: MatrixConfig) -> str:
    from taskalign.experiments.transfer_matrix.analysis import seed_means

    metric = {r["target"]: r["metric"] for r in rows}
    out = [f"# Transfer matrix ({mcfg.preset})", "",
           f"{len(mcfg.sources)} sources × {len(mcfg.targets)} targets, {mcfg.n_train} labelled cases, "
           f"{mcfg.finetune_steps} fine-tuning steps, seeds {list(mcfg.seeds)}; pretraining budget "
           f"{mcfg.budget_fraction:g} × the shipped recipe's steps; {summary['rows']} of {summary['expected_rows']} "
           "runs finished. Values are seed means."]
    for enc in mcfg.encoders:
        for measure, title in SHOWN:
            means = seed_means(rows, measure)
            out += ["", f"## {enc}: {title}", ""]
            header = ["source", *(f"{t} ({metric.get(t, '?')})" for t in mcfg.targets)]
            out += _table(header, [[s, *(_f(means.get((enc, s, t), math.nan), 4 if measure != "rpg" else 1)
                                         for t in mcfg.targets)] for s in mcfg.sources])
    out += ["", "## Within each target: Spearman ρ of the predictor with the gain over the pretrained sources", "",
            "The claim (better alignment, larger gain) predicts ρ < 0. Interval: sources resampled.", ""]
    out += _table(["encoder", "target", "predictor", "sources", "ρ", "permutation p", "95 % interval"],
                  [[w["encoder"], w["target"], w["predictor"], str(w["n_sources"]), _f(w.get("rho"), 2),
                    _f(w.get("p_value")), f"[{_f(w.get('ci_low'), 2)}, {_f(w.get('ci_high'), 2)}]"]
                   for w in summary["within_target"]])
    out += ["", "## The diagonal (supervised pretraining on the target's own objective)", ""]
    out += _table(["encoder", "target", "rank by D2P (1 = smallest)", "rank by gain (1 = largest)", "smallest D2P",
                   "largest gain"],
                  [[d["encoder"], d["target"], f"{d['rank_by_d2p']} of {d['n_sources']}",
                    f"{d['rank_by_gain']} of {d['n_sources']}", d["smallest_d2p"], d["largest_gain"]]
                   for d in summary["diagonal"]])
    out += ["", "## How far to trust `taskalign advise`: Spearman ρ of each estimator's score with the fine-tuned gain",
            "", "Over the sources (random init included), the estimator's sign applied: ρ > 0 means it ranks the "
            "sources as fine-tuning does.", ""]
    out += _table(["encoder", "target", "estimator", "sources", "ρ", "permutation p", "95 % interval"],
                  [[w["encoder"], w["target"], w["estimator"], str(w["n_sources"]), _f(w.get("rho"), 2),
                    _f(w.get("p_value")), f"[{_f(w.get('ci_low'), 2)}, {_f(w.get('ci_high'), 2)}]"]
                   for w in summary.get("advise_trust", [])])
    out += ["", "## Dose series (self-supervised objective, more of it)", ""]
    for d in summary["doses"]:
        pairs = ", ".join(f"{s}: D2P {_f(a, 4)} / gain {_f(b, 4)}" for s, a, b in zip(d["sources"], d["d2p"], d["gain"]))
        out.append(f"- {d['encoder']} {d['target']}: {pairs}")
    return "\n".join(out) + "\n"


def heatmaps(matrix_dir: Path, rows: list[dict[str, Any]], mcfg: MatrixConfig) -> list[Path]:
    """One figure per encoder: gain, RPG and D2P, sources × targets; colours per column (the
    targets' metrics differ in scale), the value written in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from taskalign.experiments.transfer_matrix.analysis import seed_means

    paths = []
    for enc in mcfg.encoders:
        fig, axes = plt.subplots(1, len(SHOWN), figsize=(4.2 * len(SHOWN), 0.45 * len(mcfg.sources) + 1.8))
        for ax, (measure, title) in zip(axes, SHOWN):
            means = seed_means(rows, measure)
            m = np.array([[means.get((enc, s, t), np.nan) for t in mcfg.targets] for s in mcfg.sources])
            lo, hi = np.nanmin(m, axis=0, initial=np.inf), np.nanmax(m, axis=0, initial=-np.inf)
            span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, 1.0)
            ax.imshow((m - np.where(np.isfinite(lo), lo, 0)) / span, cmap="viridis", vmin=0, vmax=1, aspect="auto")
            for (i, j), v in np.ndenumerate(m):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7, color="w")
            ax.set_xticks(range(len(mcfg.targets)), [t.replace("_", "\n") for t in mcfg.targets], fontsize=7)
            ax.set_yticks(range(len(mcfg.sources)), mcfg.sources, fontsize=7)
            ax.set_title(f"{enc}: {title}", fontsize=9)
        fig.tight_layout()
        path = Path(matrix_dir) / f"matrix_{enc}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
