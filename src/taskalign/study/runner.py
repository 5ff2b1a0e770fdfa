"""Run the study grid: config -> cohort -> work units (pretraining, then specialised models and
cells) on a backend -> results -> report.

Finished runs are recognised by their `metrics.json` (written last, atomically) and skipped, so a
study interrupted at any point resumes where it stopped with the same command. A changed
configuration in an existing folder is refused unless `force=True`; a second study started on a
folder in use is refused (`StudyLocked`, an flock released by the kernel when the holder dies).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.errors import UserError
from taskalign import io
from taskalign.study.cell import TaskData
from taskalign.study.cohort import Cohort
from taskalign.study.config import StudyConfig, config_from_dict
from taskalign.study.summary import finish_study
from taskalign.study.units import StudyInputs, plan_units
from taskalign.tasks.base import Sample, Task


class ConfigMismatchError(UserError, RuntimeError):
    """The study folder holds a study with another configuration."""


class Timer:
    """Seconds per stage, accumulated and written to `timing.json`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = io.read_json(path) if path.exists() else {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add({name: time.perf_counter() - start})

    def add(self, seconds: dict[str, float]) -> None:
        """Add seconds per stage (e.g. what a work unit reports) and rewrite timing.json."""
        for name, sec in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + sec
        io.write_json(self.path, self.seconds)


def check_names(cfg: StudyConfig) -> None:
    """Raise `UnknownName` (listing the registered names) for an encoder, task or data source
    that no registry holds, before any work starts."""
    from taskalign.data.sources import DATA_SOURCES
    from taskalign.encoders.base import ENCODERS
    from taskalign.tasks.base import TASKS

    DATA_SOURCES.get(cfg.data.source)
    for name in cfg.encoders:
        ENCODERS.get(name)
    for name in cfg.tasks:
        TASKS.get(name)


def prepare_folder(out: Path, cfg: StudyConfig, force: bool) -> None:
    """Write config.json first; refuse a folder that holds a different study."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    if path.exists():
        old = config_from_dict(io.read_json(path))
        if old.hash() != cfg.hash() and not force:
            raise ConfigMismatchError(
                f"{out} holds a study with another configuration (hash {old.hash()} vs {cfg.hash()}); "
                "use another --out folder, or --force to overwrite its config and reuse matching runs")
    io.write_json(path, {**cfg.to_dict(), "hash": cfg.hash()})


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


def run_study(cfg: StudyConfig, out: Path, force: bool = False, log: Callable[[str], None] = print,
              progress: Callable[[str, int, int], None] | None = None, report: bool = True,
              backend: str = "local", address: str | None = None) -> Path:
    """Run (or resume) the whole study in `out`; returns the path of results.csv (and writes
    report.html beside it unless `report=False`). `backend` is "local" (this process) or "ray"
    (each work unit a Ray task; `address` the cluster's, None for a local Ray instance).
    `progress(text, units_done, units_total)` is called as units start and finish. Raises
    `StudyLocked` when another study runs in `out`, `ConfigMismatchError` on a changed config,
    `UnitFailed` (after writing results.csv of the finished cells) when Ray units failed."""
    from taskalign.study.backends import UnitFailed, create_backend
    from taskalign.study.lock import study_lock

    check_names(cfg)
    runner = create_backend(backend, address)
    out = Path(out)
    with study_lock(out):
        prepare_folder(out, cfg, force)
        torch.set_num_threads(cfg.train.threads)
        timer = Timer(out / "timing.json")
        with timer.stage("data"):
            inputs = StudyInputs(cfg, cache_dir=out / "cache")
            cohort = inputs.cohort
            for note in cohort.notes:
                log(note)
            io.write_json(out / "splits.json", cohort.splits(cfg.data.data_seed))
        tasks, skipped, references = _usable_tasks(cfg, inputs, timer, log)
        pre, rest = plan_units(cfg, tasks)
        failed = None
        try:
            runner.run([pre, rest], out, cfg, inputs, timer.add, log, progress)
        except UnitFailed as err:   # the finished units are on disk: gather them, then report the failure
            failed = err
        with timer.stage("results"):
            path = finish_study(out, cfg, cohort.excluded, skipped, timer.seconds, references)
        if failed is not None:
            raise failed
        if report:
            from taskalign.report import build_report
            with timer.stage("report"):
                build_report(out)
    return path


def _usable_tasks(cfg: StudyConfig, inputs: StudyInputs, timer: Timer, log) -> tuple[list, list, dict]:
    """Tasks with data, the skipped ones with their reason, and each task's no-training floor."""
    tasks, skipped, references = [], [], {}
    for task_name in cfg.tasks:
        with timer.stage("data"):
            data, reason = inputs.task_data(task_name)
        if data is None:
            log(f"skipping task {task_name}: {reason}")
            skipped.append({"task": task_name, "reason": reason})
            continue
        tasks.append(task_name)
        references[task_name] = no_training_floors(data)
    return tasks, skipped, references
