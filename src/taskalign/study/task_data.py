"""A task's data in a study: its samples per split, the reference probe set, and the floors a
model reaches without training. Below `units.py` and `runner.py`, which both use it."""
from __future__ import annotations

import numpy as np

from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.study.cell import TaskData
from taskalign.study.cohort import Cohort
from taskalign.tasks.base import Sample, Task


def reference_samples(cases: list[Case], task: Task) -> list[Sample]:
    """The reference probe set as the task's encoder sees it: undegraded images, task sequences."""
    idx = [SEQUENCES.index(s) for s in task.input_sequences]
    return [Sample(c.case_id, c.image[idx], task.input_sequences, np.zeros(()), body_mask(c), c.gland)
            for c in cases]


def task_data(task: Task, cohort: Cohort, data_seed: int) -> tuple[TaskData | None, str | None]:
    """Samples of a task, or None with the reason when the cohort lacks the task's labels."""
    dropped = {s for c in cohort.train + cohort.val + cohort.test for s in c.meta.get("dropped_sequences", ())}
    used = set(task.input_sequences) | set(task.target_sequences)
    if dropped & used:
        return None, (f"{task.name} uses {', '.join(sorted(dropped & used))}, which the folder lacks and which "
                      "was dropped (dwi='drop'; dwi='zero' feeds zeros instead)")
    splits = {}
    for name in ("train", "val", "test"):
        cases = getattr(cohort, name)
        usable = [c for c in cases if not task.missing_labels(c)]
        if not usable:
            return None, f"no {name} case has the labels {task.name} needs ({', '.join(task.requires)})"
        splits[name] = [task.make_sample(c, data_seed) for c in usable]
    return TaskData(task, splits["train"], splits["val"], splits["test"],
                    reference_samples(cohort.reference, task)), None


def no_training_floors(data: TaskData) -> dict[str, float]:
    """The task's floors without any training, on the test split, for image tasks:
    `identity_*` returns the residual base itself (degraded / distorted input) where the task has
    one; `mean_target_*` predicts every test case as the voxel-wise mean of the training targets
    (what a model that ignores its input can reach). Other tasks: nothing."""
    task, test = data.task, data.test
    if task.kind != "image":
        return {}
    out: dict[str, float] = {}
    if all(s.base is not None for s in test):
        metrics, _ = task.evaluate([s.base.copy() for s in test], test)
        out.update({f"identity_{k}": float(v) for k, v in metrics.items()})
    targets = [np.asarray(s.target, dtype=np.float32) for s in data.train]
    if targets and len({t.shape for t in targets} | {np.shape(s.target) for s in test}) == 1:
        mean = np.mean(targets, axis=0)
        metrics, _ = task.evaluate([mean.copy() for _ in test], test)
        out.update({f"mean_target_{k}": float(v) for k, v in metrics.items()})
    return out
