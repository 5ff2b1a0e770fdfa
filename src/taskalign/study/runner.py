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

import torch

from taskalign.errors import UserError
from taskalign import io
from taskalign.study.config import StudyConfig, config_from_dict, regimes
from taskalign.study.analysis.summary import finish_study
from taskalign.study.task_data import no_training_floors
from taskalign.study.units import StudyInputs, plan_units


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


def run_study(cfg: StudyConfig, out: Path, force: bool = False, log: Callable[[str], None] = print,
              progress: Callable[[str, int, int], None] | None = None, report: bool = True,
              backend: str = "local", address: str | None = None, workers: int = 1) -> Path:
    """Run (or resume) the whole study in `out`; returns the path of results.csv (and writes
    report.html beside it unless `report=False`). `backend` is "local" (this process) or "ray"
    (each work unit a Ray task; `address` the cluster's, None for a local Ray instance);
    `workers` > 1 runs the local backend's units in that many worker processes.
    `progress(text, units_done, units_total)` is called as units start and finish. Raises
    `StudyLocked` when another study runs in `out`, `ConfigMismatchError` on a changed config,
    `UnitFailed` (after writing results.csv of the finished cells) when units in workers failed."""
    from taskalign.study.backends import UnitFailed, create_backend
    from taskalign.study.lock import study_lock

    check_names(cfg)
    runner = create_backend(backend, address, workers)
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


def _usable_tasks(cfg: StudyConfig, inputs: StudyInputs, timer: Timer, log) -> tuple[dict, list, dict]:
    """{task with data: its regimes}, the skipped tasks (and regimes) with their reason, and each
    task's no-training floor. A regime larger than the task's training pool (a small real folder)
    is skipped with a note; when none fits, the task runs on its whole pool (said in the note)."""
    tasks, skipped, references = {}, [], {}
    sizes = regimes(cfg.data)
    for task_name in cfg.tasks:
        with timer.stage("data"):
            data, reason = inputs.task_data(task_name)
        if data is None:
            log(f"skipping task {task_name}: {reason}")
            skipped.append({"task": task_name, "reason": reason})
            continue
        pool = len(data.train)
        fit = tuple(n for n in sizes if n <= pool) or (pool,)
        for n in (n for n in sizes if n > pool):
            reason = f"{n} labelled cases asked, the training pool holds {pool}" + (
                f"; ran on all {pool} instead" if fit == (pool,) else "")
            log(f"{task_name}: {reason}")
            skipped.append({"task": task_name, "n_train": n, "reason": reason})
        tasks[task_name] = fit
        references[task_name] = no_training_floors(data)
    return tasks, skipped, references
