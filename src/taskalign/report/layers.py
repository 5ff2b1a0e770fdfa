"""The layer-wise alignment profile: D2P per encoder stage, per task (when the cells have it).

Each cell's alignment.json may carry `layers`: per stage of the encoder's `maps`, D2P between the
fine-tuned and pretrained spatial-mean features, under that stage's own reference kernel (the
pretrained stage features of the reference probe set), and CKA of the same pair. Values are
averaged over seeds. The plot shows each (encoder, task) at its largest labelled-set size; the
table has every size. Kernels differ between stages, so read a profile's shape (where along the
depth the features move) rather than compare values across stages of different width.
"""
from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from taskalign.report.load import run_key
from taskalign.report.plots import PlotFile, _figure, _finish, encoder_colors

# (encoder, task, n_train) -> stage -> D2P over seeds
Profile = dict[tuple[str, str, int | None], dict[int, list[float]]]


def read_layer_profiles(study_dir: Path, legacy_n_train: int | None = None) -> Profile:
    """{(encoder, task, n_train): {stage: [D2P per seed]}} from cells/<m>/<t>/n<k>/seed<s>/alignment.json
    (cells/<m>/<t>/seed<s>/ in a folder written before regimes, as n_train = `legacy_n_train`)."""
    profiles: Profile = defaultdict(lambda: defaultdict(list))
    cells = Path(study_dir) / "cells"
    for path in sorted(cells.glob("*/*/n*/seed*/alignment.json")) + sorted(cells.glob("*/*/seed*/alignment.json")):
        key = run_key(path.parent, legacy_n_train)
        try:
            layers = json.loads(path.read_text()).get("layers") or []
        except (OSError, ValueError):
            continue
        if key is None:
            continue
        for layer in layers:
            profiles[key[:3]][int(layer["stage"])].append(float(layer["d2p"]))
    return {k: dict(v) for k, v in profiles.items()}


def largest_regime(profiles: Profile) -> dict[tuple[str, str], dict[int, list[float]]]:
    """{(encoder, task): stages} at each pair's largest labelled-set size."""
    out: dict[tuple[str, str], tuple] = {}
    for (enc, task, n), stages in profiles.items():
        if (enc, task) not in out or (n or 0) > (out[(enc, task)][0] or 0):
            out[(enc, task)] = (n, stages)
    return {k: v[1] for k, v in out.items()}


def plot_layer_profiles(profiles: Profile, out_path: Path) -> PlotFile:
    """One panel per encoder: D2P (mean over seeds) against the stage, a line per task (each at
    its largest labelled-set size)."""
    profiles = largest_regime(profiles)
    encoders = sorted({e for e, _ in profiles})
    tasks = sorted({t for _, t in profiles})
    fig, _ = _figure((4.2 * len(encoders) + 1.5, 3.8))
    fig.clear()
    colors = encoder_colors(tasks)   # one colour per task
    for i, enc in enumerate(encoders):
        ax = fig.add_subplot(1, len(encoders), i + 1)
        for task in tasks:
            stages = profiles.get((enc, task))
            if not stages:
                continue
            xs = sorted(stages)
            ax.plot(xs, [np.mean(stages[k]) for k in xs], "o-", color=colors[task], label=task.replace("_", " "))
            ax.set_xticks(xs, [f"stage {k + 1}" for k in xs], fontsize=8)
        ax.set_title(enc, fontsize=10)
        ax.set_ylabel("D2P of the stage's features  [unitless]")
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels() if fig.axes else ([], [])
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    _finish(fig, [], out_path)
    return PlotFile(Path(out_path), "Layer-wise alignment profile",
                    "D2P between the fine-tuned and pretrained features of each encoder stage (spatial mean "
                    "of the stage's feature map over the probe cases), each stage under its own reference "
                    "kernel; mean over seeds, at each task's largest labelled-set size. Read where along the depth the features moved, not values "
                    "across stages.")


def layer_section(profiles: Profile) -> str:
    """A short HTML section: the profile's table, or why there is none."""
    head = "<h2>Layer-wise alignment profile</h2>\n"
    if not profiles:
        return (head + "<p id='layers'>Not available: the cells' alignment.json carry no per-stage D2P "
                "(studies run before stage features were saved).</p>")
    rows = []
    for (enc, task, n_train), stages in sorted(profiles.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2] or 0)):
        cells = "".join(f"<td>{np.mean(stages[k]):.4g}</td>" for k in sorted(stages))
        rows.append(f"<tr><td class='t'>{html.escape(task)}</td><td class='t'>{html.escape(enc)}</td>"
                    f"<td>{n_train if n_train is not None else 'n/a'}</td>{cells}</tr>")
    n = max(len(s) for s in profiles.values())
    header = "".join(f"<th>D2P stage {k + 1}</th>" for k in range(n))
    return (head + "<p class='small'>D2P per encoder stage (mean over seeds), per labelled-set size n; the "
            "plot is with the further figures below.</p>\n<div class='scroll'><table id='layers'><thead><tr>"
            f"<th class='t'>task</th><th class='t'>encoder</th><th>n</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
