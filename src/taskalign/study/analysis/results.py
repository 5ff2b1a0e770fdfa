"""Gather finished runs into `results.csv`: one row per encoder × task × labelled-set size × seed
(docs/study_folder.md)."""
from __future__ import annotations

import csv
import io as _io
import json
import math
from pathlib import Path
from typing import Any

from taskalign import io
from taskalign.align.drift import SATURATED
from taskalign.study.cell import run_dir
from taskalign.study.analysis.outcomes import common_target, epochs_to_target, relative_gain, self_convergence_epoch

COLUMNS = [
    "encoder", "task", "n_train", "seed", "metric", "higher_is_better", "value", "specialised_value", "scratch_value", "rpg",
    "gain_over_scratch", "convergence_epoch", "convergence_censored", "scratch_convergence_epoch",
    "specialised_convergence_epoch", "self_convergence_epoch", "epochs", "d2p", "d2r", "d2s", "d2p_d2r_ratio",
    "d2p_p", "d2r_p", "d2s_p", "cka_pretrained", "cka_random", "cka_scratch", "n_probe", "sigma_ref",
    "d2p_saturation", "d2r_saturation", "d2s_saturation",
    # added with the head-read feature (alignment.json "feature"); NaN / False for older folders
    "feature", "d2p_saturated", "d2r_saturated", "d2s_saturated", "e2p", "e2r", "e2s",
    "d2p_pooled", "d2r_pooled", "d2s_pooled", "d2p_pooled_saturation", "d2r_pooled_saturation",
    "d2s_pooled_saturation", "d2p_pooled_saturated", "d2r_pooled_saturated", "d2s_pooled_saturated",
    "e2p_pooled", "e2r_pooled", "e2s_pooled", "cka_pretrained_pooled", "sigma_ref_pooled",
    # added with early prediction (alignment.json "early"); NaN / False for older folders
    "d2p_epoch1", "d2p_epoch1_saturated", "e2p_epoch1", "d2p_10pct", "d2p_10pct_saturated", "e2p_10pct",
]
DRIFTS = ("d2p", "d2r", "d2s")
EARLY = {"early_epoch1": "epoch1", "early_10pct": "10pct"}   # alignment.json state -> column suffix


def read_curve(path: Path) -> list[float]:
    if not path.exists():
        return []
    return [json.loads(line)["val_metric"] for line in path.read_text().splitlines() if line.strip()]


def _best(curve: list[float], higher: bool) -> float:
    finite = [v for v in curve if math.isfinite(v)]
    return (max(finite) if higher else min(finite)) if finite else float("nan")


def cell_row(study_dir: Path, encoder: str, task: str, n_train: int, seed: int) -> dict[str, Any] | None:
    """The results row of one cell, or None when one of its runs is not finished."""
    dirs = {m: run_dir(study_dir, m, task, n_train, seed) for m in (encoder, f"{encoder}-scratch", "specialised")}
    if not all((d / "metrics.json").exists() for d in dirs.values()) or not (dirs[encoder] / "alignment.json").exists():
        return None
    ft, sc, sp = (io.read_json(d / "metrics.json") for d in dirs.values())
    higher = bool(ft["higher_is_better"])
    curves = {m: read_curve(d / "curve.jsonl") for m, d in dirs.items()}
    # the common target uses every model of this task, regime and seed, other encoders included
    all_best = [_best(read_curve(d / "curve.jsonl"), higher) for p in (Path(study_dir) / "cells").iterdir()
                if (d := run_dir(study_dir, p.name, task, n_train, seed)).exists()]
    target = common_target(all_best, higher)
    conv = {m: epochs_to_target(c, target, higher) for m, c in curves.items()}
    align = io.read_json(dirs[encoder] / "alignment.json")
    d2p, d2r = align["d2p"]["mmd2"], align["d2r"]["mmd2"]
    return {
        "encoder": encoder, "task": task, "n_train": n_train, "seed": seed, "metric": ft["metric"], "higher_is_better": higher,
        "value": ft["value"], "specialised_value": sp["value"], "scratch_value": sc["value"],
        "rpg": relative_gain(ft["value"], sp["value"], higher),
        "gain_over_scratch": (ft["value"] - sc["value"]) * (1 if higher else -1),
        "convergence_epoch": conv[encoder][0], "convergence_censored": conv[encoder][1],
        "scratch_convergence_epoch": conv[f"{encoder}-scratch"][0],
        "specialised_convergence_epoch": conv["specialised"][0],
        "self_convergence_epoch": self_convergence_epoch(curves[encoder], higher), "epochs": len(curves[encoder]),
        "d2p": d2p, "d2r": d2r, "d2s": align["d2s"]["mmd2"],
        "d2p_d2r_ratio": d2p / d2r if d2r and math.isfinite(d2r) and d2r > 0 else float("nan"),
        "d2p_p": align["d2p"]["p_value"], "d2r_p": align["d2r"]["p_value"], "d2s_p": align["d2s"]["p_value"],
        "cka_pretrained": _number(align["cka"].get("pretrained")), "cka_random": _number(align["cka"].get("random")),
        "cka_scratch": _number(align["cka"].get("scratch")), "n_probe": align["n_probe"], "sigma_ref": align["sigma_ref"],
        "feature": align.get("feature", "pooled"),      # folders written before the head-read feature: pooled
        **drift_columns(align, ""), **drift_columns(align.get("pooled", {}), "_pooled"),
        "cka_pretrained_pooled": _number(align.get("pooled", {}).get("cka", {}).get("pretrained")),
        "sigma_ref_pooled": _number(align.get("pooled", {}).get("sigma_ref")),
        **early_columns(align.get("early", [])),
    }


def early_columns(early: list[dict[str, Any]]) -> dict[str, Any]:
    """d2p_<checkpoint>, its saturated flag and e2p_<checkpoint> for each early checkpoint of
    alignment.json; NaN / False where the run saved none."""
    by_state = {e["state"]: e for e in early}
    out: dict[str, Any] = {}
    for state, suffix in EARLY.items():
        record = by_state.get(state, {})
        sat = _number(record.get("saturation"))
        out[f"d2p_{suffix}"] = _number(record.get("d2p"))
        out[f"d2p_{suffix}_saturated"] = bool(math.isfinite(sat) and sat >= SATURATED)
        out[f"e2p_{suffix}"] = _number(record.get("e2p"))
    return out


def _number(value: Any) -> float:
    return float(value) if value is not None else float("nan")   # None: absent from older folders


def drift_columns(feature: dict[str, Any], suffix: str) -> dict[str, Any]:
    """d2x<suffix>_saturation, _saturated and e2x<suffix> (and d2x<suffix> for the pooled block)
    of one feature record of alignment.json; NaN / False where a field is absent."""
    out: dict[str, Any] = {}
    for d in DRIFTS:
        record = feature.get(d, {})
        sat = _number(record.get("saturation"))
        if suffix:
            out[f"{d}{suffix}"] = _number(record.get("mmd2"))
        out[f"{d}{suffix}_saturation"] = sat
        out[f"{d}{suffix}_saturated"] = bool(math.isfinite(sat) and sat >= SATURATED)
        out[f"e{d[1:]}{suffix}"] = _number(record.get("energy"))
    return out


def saturation_note(rows: list[dict[str, Any]]) -> str | None:
    """One line naming the cells whose D2x are saturated (>= SATURATED of their ceiling), or None."""
    hits = []
    for r in rows:
        names = [d.upper() for d in DRIFTS if float(r[f"{d}_saturation"]) >= SATURATED]
        if names:
            hits.append(f"{r['encoder']}/{r['task']}/n{r['n_train']}/seed{r['seed']} {','.join(names)}")
    if not hits:
        return None
    return (f"MMD² at >= {SATURATED:.0%} of its ceiling (the two feature states share almost no kernel mass, so "
            f"the value measures how tight each state is, not how far apart they are; such values are left "
            f"out of the correlations): {'; '.join(hits)}")


def write_results(study_dir: Path, rows: list[dict[str, Any]]) -> Path:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    path = Path(study_dir) / "results.csv"
    io.write_text(path, buf.getvalue())
    return path


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return v
