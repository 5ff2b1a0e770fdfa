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


def nested_order(labels: list[int | None], seed: int) -> list[int]:
    """An order of the training pool whose every prefix is a labelled subset of the study:
    the subsets are nested (the 8 cases of a small regime are among the 16 of the next), and
    with labels they are stratified, each prefix holding the classes in the pool's proportions
    as closely as whole cases allow (so even a small subset has both classes). Seeded."""
    rng = np.random.default_rng([seed, 8128])
    if any(y is None for y in labels):
        return [int(i) for i in rng.permutation(len(labels))]
    by_class = {y: [int(i) for i in rng.permutation([j for j, v in enumerate(labels) if v == y])]
                for y in sorted(set(labels))}
    share = {y: len(idx) / len(labels) for y, idx in by_class.items()}
    order: list[int] = []
    taken = {y: 0 for y in by_class}
    for k in range(1, len(labels) + 1):
        # the class furthest below its share of a k-case prefix gives the next case
        y = max((y for y in by_class if taken[y] < len(by_class[y])), key=lambda y: (share[y] * k - taken[y], -y))
        order.append(by_class[y][taken[y]])
        taken[y] += 1
    return order


def with_train_cases(data: TaskData, n: int, seed: int) -> TaskData:
    """`data` with the first `n` training samples of `nested_order` (case-level labels stratify)."""
    if n > len(data.train):
        raise ValueError(f"{data.task.name}: a labelled set of {n} cases needs a training pool of at least {n}, "
                         f"it has {len(data.train)}")
    labels = [int(s.target.reshape(-1)[0]) if data.task.kind == "classification" else None for s in data.train]
    keep = sorted(nested_order(labels, seed)[:n])
    return TaskData(data.task, [data.train[i] for i in keep], data.val, data.test, data.reference)
