"""Run the study grid locally: config -> cohort -> pretraining -> cells -> results -> report.

Finished runs are recognised by their `metrics.json` and skipped, so a study interrupted at any
point resumes where it stopped with the same command. A changed configuration in an existing
folder is refused unless `force=True`.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.study import io
from taskalign.study.cell import TaskData, derive_seed, run_specialised, run_vfm
from taskalign.study.cohort import Cohort, build_cohort
from taskalign.study.config import StudyConfig, config_from_dict
from taskalign.study.pretrain_stage import ensure_pretrained
from taskalign.tasks.base import Sample, Task, create_task


class ConfigMismatchError(RuntimeError):
    pass


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
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            io.write_json(self.path, self.seconds)


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


def identity_reference(data: TaskData) -> dict[str, float]:
    """The task's floor without any training, on the test split: the residual base itself
    (degraded / distorted input) for image tasks that have one, else nothing."""
    task, test = data.task, data.test
    if task.kind != "image" or any(s.base is None for s in test):
        return {}
    metrics, _ = task.evaluate([s.base.copy() for s in test], test)
    return {f"identity_{k}": float(v) for k, v in metrics.items()}


def run_study(cfg: StudyConfig, out: Path, force: bool = False, log: Callable[[str], None] = print,
              progress: Callable[[str, int, int], None] | None = None, report: bool = True) -> Path:
    """Run (or resume) the whole study in `out`; returns the path of results.csv (and writes
    report.html beside it unless `report=False`). `progress(text, cells_done, cells_total)` is
    called before each cell."""
    from taskalign.study.alignment import align_cell
    from taskalign.study.summary import finish_study

    out = Path(out)
    prepare_folder(out, cfg, force)
    torch.set_num_threads(cfg.train.threads)
    timer = Timer(out / "timing.json")
    with timer.stage("data"):
        cohort = build_cohort(cfg.data, cache_dir=str(out / "cache"))
        for note in cohort.notes:
            log(note)
        io.write_json(out / "splits.json", cohort.splits(cfg.data.data_seed))
    weights = dict(cfg.weights)
    for enc in cfg.encoders:
        if enc not in weights:
            with timer.stage(f"pretrain {enc}"):
                weights[enc] = str(ensure_pretrained(out, enc, cfg, cohort.pretrain, log=log))
    skipped: list[dict[str, str]] = []
    references: dict[str, dict[str, float]] = {}
    total, done = len(cfg.tasks) * len(cfg.seeds) * len(cfg.encoders), 0
    for task_name in cfg.tasks:
        task = create_task(task_name)
        with timer.stage("data"):
            data, reason = task_data(task, cohort, cfg.data.data_seed)
        if data is None:
            log(f"skipping task {task_name}: {reason}")
            skipped.append({"task": task_name, "reason": reason})
            continue
        references[task_name] = identity_reference(data)
        for seed in cfg.seeds:
            with timer.stage("specialised"):
                run_specialised(out, cfg, data, seed)
            for enc in cfg.encoders:
                if progress:
                    progress(f"{enc} / {task_name} / seed {seed}", done, total)
                done += 1
                with timer.stage("scratch"):
                    run_vfm(out, cfg, data, enc, seed, weights=None)
                with timer.stage("fine-tune"):
                    run_vfm(out, cfg, data, enc, seed, weights=Path(weights[enc]))
                with timer.stage("alignment"):
                    align_cell(out, cfg, data, enc, seed, Path(weights[enc]))
    with timer.stage("results"):
        path = finish_study(out, cfg, cohort.excluded, skipped, timer.seconds, references)
    if report:
        from taskalign.report import build_report
        with timer.stage("report"):
            build_report(out)
    return path
