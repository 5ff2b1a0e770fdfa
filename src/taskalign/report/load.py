"""Reading a finished study folder (docs/study_folder.md) into plain Python data for the report.

Only the standard library and numpy: pandas is not a dependency. Required files are
config.json, results.csv and summary.json (a study writes summary.json after the last cell, so
its absence means the study did not finish); everything else is optional and, when absent, the
report says so instead of failing.

Run folders are `cells/<model>/<task>/n<labelled cases>/seed<s>/`. A folder written before the
labelled-set regimes (`cells/<model>/<task>/seed<s>/`, no `n_train` column) is read as one regime
whose size is the number of training cases in splits.json (else config `data.n_train`, else
unknown: None); `StudyData.legacy_layout` is then True and the report says so.
"""
from __future__ import annotations

import csv
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskalign.errors import UserError

REQUIRED_FILES = ("config.json", "results.csv", "summary.json")

INT_COLUMNS = ("n_train", "seed", "convergence_epoch", "scratch_convergence_epoch",
               "specialised_convergence_epoch", "self_convergence_epoch", "epochs", "n_probe")
BOOL_COLUMNS = ("higher_is_better", "convergence_censored")
TEXT_COLUMNS = ("encoder", "task", "metric")
FLOAT_COLUMNS = ("value", "specialised_value", "scratch_value", "rpg", "gain_over_scratch",
                 "d2p", "d2r", "d2s", "d2p_d2r_ratio", "d2p_p", "d2r_p", "d2s_p",
                 "cka_pretrained", "cka_random", "cka_scratch", "sigma_ref")
RESULT_COLUMNS = TEXT_COLUMNS + INT_COLUMNS + BOOL_COLUMNS + FLOAT_COLUMNS

RunKey = tuple[str, str, int | None, int]  # (model, task, n_train, seed); model is "<encoder>",
                                               # "<encoder>-scratch" or "specialised"


class NotAFinishedStudy(UserError, FileNotFoundError):
    """A file the report needs is missing from the study folder."""


@dataclass
class StudyData:
    """Everything the report reads from one study folder."""

    study_dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    rows: list[dict[str, Any]]                                  # results.csv, typed
    curves: dict[RunKey, list[dict[str, Any]]] = field(default_factory=dict)   # curve.jsonl lines
    metrics: dict[RunKey, dict[str, Any]] = field(default_factory=dict)        # metrics.json
    splits: dict[str, Any] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    legacy_layout: bool = False                                  # written before regimes (module docstring)

    @property
    def encoders(self) -> list[str]:
        return _unique(r["encoder"] for r in self.rows)

    @property
    def tasks(self) -> list[str]:
        return _unique(r["task"] for r in self.rows)

    @property
    def seeds(self) -> list[int]:
        return sorted(set(r["seed"] for r in self.rows if r["seed"] is not None))

    @property
    def regimes(self) -> list[int]:
        """The labelled-set sizes of the result rows, ascending (unknown sizes left out)."""
        return sorted(set(r["n_train"] for r in self.rows if r["n_train"] is not None))

    @property
    def preset(self) -> str:
        return str(self.summary.get("preset") or self.config.get("preset") or "unknown")


def load_study(study_dir: str | Path) -> StudyData:
    """Read `study_dir`; raise `NotAFinishedStudy` naming the first missing required file."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise NotAFinishedStudy(f"study folder {study_dir} does not exist; pass the --out folder of "
                                "`taskalign study`")
    for name in REQUIRED_FILES:
        if not (study_dir / name).is_file():
            raise NotAFinishedStudy(
                f"{name} not found in {study_dir}: this is not a finished study folder "
                f"(run `taskalign study --out {study_dir}` again; it resumes and writes {name} at the end)")
    rows = read_results_csv(study_dir / "results.csv")
    splits = _read_json(study_dir / "splits.json") if (study_dir / "splits.json").is_file() else None
    config = _read_json(study_dir / "config.json")
    legacy = all(r["n_train"] is None for r in rows) and not any((study_dir / "cells").glob("*/*/n*/seed*"))
    legacy_n = _legacy_n_train(splits, config) if legacy else None
    if legacy:
        for row in rows:
            row["n_train"] = legacy_n
    curves, metrics = read_cells(study_dir / "cells", legacy_n_train=legacy_n)
    summary = _read_json(study_dir / "summary.json")
    timing_path = study_dir / "timing.json"
    timing = _read_json(timing_path) if timing_path.is_file() else dict(summary.get("timing") or {})
    return StudyData(study_dir=study_dir, config=config, summary=summary,
                     rows=rows, curves=curves, metrics=metrics, splits=splits,
                     timing={str(k): to_float(v) for k, v in timing.items()}, legacy_layout=legacy)


def read_results_csv(path: Path) -> list[dict[str, Any]]:
    """One typed dict per row; numbers that are empty, 'nan' or unparsable become NaN / None."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("encoder", "task", "seed", "metric", "value", "rpg") if c not in header]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; expected the columns of "
                             "docs/study_folder.md (was it written by an older taskalign?)")
        rows = [_type_row(raw) for raw in reader]
    if not rows:
        raise ValueError(f"{path} has no rows: the study finished no cell; run it again")
    for row in rows:  # columns a newer/older writer may omit still exist, as n/a
        for col in RESULT_COLUMNS:
            row.setdefault(col, _missing_value(col))
    return rows


def read_cells(cells_dir: Path, legacy_n_train: int | None = None
               ) -> tuple[dict[RunKey, list[dict]], dict[RunKey, dict]]:
    """curve.jsonl and metrics.json of every run under cells/<model>/<task>/n<k>/seed<s>/; and,
    for a folder written before regimes, cells/<model>/<task>/seed<s>/ as n_train =
    `legacy_n_train`."""
    curves: dict[RunKey, list[dict]] = {}
    metrics: dict[RunKey, dict] = {}
    if not cells_dir.is_dir():
        return curves, metrics
    for run_dir in sorted(cells_dir.glob("*/*/n*/seed*")) + sorted(cells_dir.glob("*/*/seed*")):
        key = run_key(run_dir, legacy_n_train)
        if key is None:
            continue
        if (run_dir / "curve.jsonl").is_file():
            curves[key] = read_curve(run_dir / "curve.jsonl")
        if (run_dir / "metrics.json").is_file():
            metrics[key] = _read_json(run_dir / "metrics.json")
    return curves, metrics


def run_key(run_dir: Path, legacy_n_train: int | None = None) -> RunKey | None:
    """(model, task, n_train, seed) of a run folder, or None when the path is not a run folder."""
    seed = _suffix_int(run_dir.name, "seed")
    if seed is None:
        return None
    n_train = _suffix_int(run_dir.parent.name, "n")
    if n_train is not None:       # cells/<model>/<task>/n<k>/seed<s>
        return (run_dir.parents[2].name, run_dir.parents[1].name, n_train, seed)
    return (run_dir.parents[1].name, run_dir.parent.name, legacy_n_train, seed)


def read_curve(path: Path) -> list[dict[str, Any]]:
    """The epochs of one run, sorted by epoch; a truncated last line (killed run) is dropped."""
    epochs = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "epoch" in rec:
            rec["val_metric"] = to_float(rec.get("val_metric"))
            epochs.append(rec)
    return sorted(epochs, key=lambda r: r["epoch"])


def to_float(x: Any) -> float:
    """float(x), with None, '', 'nan' and unparsable text as NaN."""
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def is_number(x: Any) -> bool:
    """A finite real number (bools and NaN are not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _type_row(raw: dict[str, str | None]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col, text in raw.items():
        if col is None:
            continue  # extra cells without a header
        text = (text or "").strip()
        if col in TEXT_COLUMNS:
            row[col] = text
        elif col in INT_COLUMNS:
            value = to_float(text)
            row[col] = int(value) if math.isfinite(value) else None
        elif col in BOOL_COLUMNS:
            row[col] = _to_bool(text)
        else:
            row[col] = to_float(text)
    return row


def _suffix_int(name: str, prefix: str) -> int | None:
    rest = name[len(prefix):]
    return int(rest) if name.startswith(prefix) and rest.isdigit() else None


def _legacy_n_train(splits: dict[str, Any] | None, config: dict[str, Any]) -> int | None:
    if splits and isinstance(splits.get("train"), list):
        return len(splits["train"])
    n = (config.get("data") or {}).get("n_train")
    return int(n) if is_number(n) else None


def _missing_value(col: str) -> Any:
    if col in TEXT_COLUMNS:
        return ""
    if col in INT_COLUMNS or col in BOOL_COLUMNS:
        return None
    return math.nan


def _to_bool(text: str) -> bool | None:
    low = text.lower()
    if low in ("true", "1", "yes", "1.0"):
        return True
    if low in ("false", "0", "no", "0.0"):
        return False
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # Python's json reads NaN/Infinity as written by json.dump
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it and re-run the study stage "
                         "that writes it") from err


def _unique(items) -> list:
    seen: dict = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
