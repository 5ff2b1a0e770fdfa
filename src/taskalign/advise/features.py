"""What each estimator reads: the frozen features of one candidate on the target cases, as rows
with labels, and the case-level features of the drift proxy.

The features are the ones the task's head reads (DESIGN.md §3), taken from the frozen encoder in
eval mode (`taskalign.probe.features.dense_features`):

    classification          one row per case: `pooled`; label csPCa 0/1
    segmentation            one row per probe-grid cell (D/2, H/4, W/4 cells; every map resampled
                            onto the grid and concatenated: what a UNETR head reads there);
                            label 1 for cells at least half csPCa lesion, 0 for lesion-free body
                            cells; up to 48 body cells per case (seeded) plus every lesion cell;
                            cells partly lesion (0 < fraction < ½) are left out as ambiguous
    image tasks             one row per cell, up to 48 body cells per case (seeded): the task's
                            residual target − base (the target itself for synthesis) averaged over
                            the cell, one column per output sequence; regression
    drift proxy (any task)  one row per case: `pooled` (classification) or each map's mean over
                            positions, concatenated (dense and image tasks)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskalign.data.case import Case
from taskalign.encoders.base import Encoder
from taskalign.probe.features import DenseFeatures, dense_features, pool_to_grid
from taskalign.probe.probes import restoration_rows, restoration_table
from taskalign.study.task_data import reference_samples
from taskalign.tasks.base import Sample, Task

LESION_CELL = 0.5


@dataclass
class TaskRows:
    x: np.ndarray             # (rows, F) features
    y: np.ndarray             # (rows,) class ids or (rows, k) targets
    groups: np.ndarray        # (rows,) case index of each row
    regression: bool
    unit: str                 # "case" or "cell"
    case_features: np.ndarray  # (cases, D) for the drift proxy


def task_samples(task: Task, cases: list[Case], data_seed: int) -> tuple[list[Sample], list[str]]:
    """The task's samples of the cases that carry its labels, and a note per case left out."""
    samples, notes = [], []
    for case in cases:
        missing = task.missing_labels(case)
        if missing:
            notes.append(f"{case.case_id}: no {', '.join(missing)} for {task.name}")
        else:
            samples.append(task.make_sample(case, data_seed))
    return samples, notes


def _features(encoder: Encoder, samples: list[Sample]) -> DenseFeatures:
    return dense_features(encoder, [encoder.preprocess(s.input, s.input_sequences, s.gland) for s in samples],
                          batch_size=2)


def case_level(task: Task, feats: DenseFeatures) -> np.ndarray:
    """(cases, D): the drift proxy's feature (module docstring)."""
    return feats.pooled if task.kind == "classification" else np.concatenate(feats.map_means, axis=1)


def _segmentation_rows(cells: np.ndarray, samples: list[Sample], seed: int) -> tuple[np.ndarray, ...]:
    grid = cells.shape[1:4]
    lesion = np.stack([pool_to_grid(s.target[0], grid) for s in samples])     # (N, gd, gh, gw)
    body = np.stack([pool_to_grid(s.mask, grid) for s in samples])
    x, y, g = [], [], []
    for i, chosen in enumerate(restoration_rows(body, seed)):
        frac = lesion[i].ravel()
        rows = np.union1d(chosen, np.flatnonzero(frac >= LESION_CELL))
        rows = rows[(frac[rows] == 0) | (frac[rows] >= LESION_CELL)]
        x.append(cells[i].reshape(-1, cells.shape[-1])[rows])
        y.append((frac[rows] >= LESION_CELL).astype(np.int64))
        g.append(np.full(len(rows), i))
    return np.concatenate(x), np.concatenate(y), np.concatenate(g)


def _image_rows(cells: np.ndarray, samples: list[Sample], seed: int) -> tuple[np.ndarray, ...]:
    grid = cells.shape[1:4]
    residual = np.stack([pool_to_grid(s.target - (s.base if s.base is not None else 0.0), grid) for s in samples])
    body = np.stack([pool_to_grid(s.mask, grid) for s in samples])
    table = restoration_table(cells, residual, restoration_rows(body, seed))
    return table.x, table.y, table.groups


def task_rows(task: Task, encoder: Encoder, samples: list[Sample], seed: int = 0) -> TaskRows:
    """Rows, labels and case features of one candidate on the task's target samples."""
    if not samples:
        raise ValueError(f"no target case carries the labels {task.name} needs ({', '.join(task.requires)})")
    feats = _features(encoder, samples)
    if task.kind == "classification":
        labels = np.array([int(s.target.reshape(-1)[0]) for s in samples])
        return TaskRows(feats.pooled, labels, np.arange(len(samples)), False, "case", case_level(task, feats))
    if task.kind == "segmentation":
        x, y, g = _segmentation_rows(feats.cells, samples, seed)
        return TaskRows(x, y, g, False, "cell", case_level(task, feats))
    x, y, g = _image_rows(feats.cells, samples, seed)
    return TaskRows(x, y, g, True, "cell", case_level(task, feats))


def reference_features(task: Task, encoder: Encoder, reference: list[Case]) -> np.ndarray:
    """(cases, D) case-level features of the reference cases as the task's encoder sees them
    (undegraded images, the task's input sequences: `study.task_data.reference_samples`)."""
    return case_level(task, _features(encoder, reference_samples(reference, task)))
