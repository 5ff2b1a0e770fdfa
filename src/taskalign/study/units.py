"""The study grid as a list of work units, executed by a backend (local loop or Ray).

Three kinds of unit (DESIGN.md §1, §9):

    pretrain     (encoder)                  the family's pretraining stage, once per encoder
    specialised  (task, n_train, seed)      the task's specialised model; shared by the encoders'
                                            cells of that task, regime and seed: its own unit
    cell         (encoder, task, n_train, seed)
                                            scratch run, fine-tuned run, alignment stage

`n_train` is the labelled-set size (regime): the first n cases of the training pool's nested
order (`task_data.with_train_cases`), the same for every model of a task.

Cells depend only on their encoder's pretraining unit (results.csv joins cells with the
specialised runs afterwards), so every unit of one stage is independent of the others and no
unit ever writes another's folder. `execute_unit` is what both backends call, in the study
folder (local) or in a worker's scratch copy of it (Ray), with the same seeds and thread count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from taskalign.study.cell import TaskData, is_done, run_dir, run_specialised, run_vfm
from taskalign.study.cohort import Cohort, build_cohort
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import ensure_pretrained, pretrained_dir
from taskalign.study.task_data import task_data, with_train_cases
from taskalign.tasks.base import create_task
from taskalign.train.host_memory import keep_freed_memory


@dataclass(frozen=True)
class WorkUnit:
    kind: str                      # "pretrain" | "specialised" | "cell"
    encoder: str | None = None
    task: str | None = None
    seed: int | None = None
    n_train: int | None = None

    @property
    def name(self) -> str:
        parts = [self.kind] + [str(p) for p in (self.encoder, self.task) if p] + (
            [f"{self.n_train} labelled"] if self.n_train is not None else []) + (
            [f"seed {self.seed}"] if self.seed is not None else [])
        return " / ".join(parts)

    def folders(self, study_dir: Path, cfg: StudyConfig) -> list[Path]:
        """The folders this unit writes (and nothing else writes)."""
        if self.kind == "pretrain":
            return [pretrained_dir(study_dir, self.encoder, cfg)]
        if self.kind == "specialised":
            return [run_dir(study_dir, "specialised", self.task, self.n_train, self.seed)]
        return [run_dir(study_dir, m, self.task, self.n_train, self.seed)
                for m in (self.encoder, f"{self.encoder}-scratch")]

    def done(self, study_dir: Path, cfg: StudyConfig) -> bool:
        """True when the unit's completion records exist (each is written last, atomically)."""
        dirs = self.folders(study_dir, cfg)
        if self.kind == "pretrain":
            return (dirs[0] / "card.json").exists() and (dirs[0] / "weights.safetensors").exists()
        if self.kind == "specialised":
            return is_done(dirs[0])
        return all(is_done(d) for d in dirs) and (dirs[0] / "alignment.json").exists()


def plan_units(cfg: StudyConfig, tasks: dict[str, tuple[int, ...]]) -> tuple[list[WorkUnit], list[WorkUnit]]:
    """(pretraining stage, everything else) in the local backend's order: per task, regime and
    seed, the specialised model, then each encoder's cell. `tasks`: {task with data: its regimes}."""
    pre = [WorkUnit("pretrain", encoder=e) for e in cfg.encoders if e not in dict(cfg.weights)]
    rest = []
    for task, sizes in tasks.items():
        for n in sizes:
            for seed in cfg.seeds:
                rest.append(WorkUnit("specialised", task=task, seed=seed, n_train=n))
                rest += [WorkUnit("cell", encoder=e, task=task, seed=seed, n_train=n) for e in cfg.encoders]
    return pre, rest


def weights_path(study_dir: Path, cfg: StudyConfig, encoder: str) -> Path:
    """The pretrained weights a cell starts from: a published file, or the in-house stage's."""
    published = dict(cfg.weights)
    if encoder in published:
        return Path(published[encoder])
    return pretrained_dir(study_dir, encoder, cfg) / "weights.safetensors"


class StudyInputs:
    """The cohort and each task's samples, built once per process from the config alone, so a
    Ray worker rebuilds exactly what the driver has (the phantom is seeded)."""

    def __init__(self, cfg: StudyConfig, cohort: Cohort | None = None, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self._cohort = cohort
        self._cache_dir = cache_dir   # real folders' preprocessing cache (None: read the files)
        self._data: dict[str, tuple[TaskData | None, str | None]] = {}
        self._regimes: dict[tuple[str, int], TaskData] = {}

    @property
    def cohort(self) -> Cohort:
        if self._cohort is None:
            cache = None if self._cache_dir is None else str(self._cache_dir)
            self._cohort = build_cohort(self.cfg.data, cache_dir=cache)
        return self._cohort

    def task_data(self, task_name: str) -> tuple[TaskData | None, str | None]:
        """The task's samples with the whole training pool (None and the reason when it has none)."""
        if task_name not in self._data:
            self._data[task_name] = task_data(create_task(task_name), self.cohort, self.cfg.data.data_seed)
        return self._data[task_name]

    def regime_data(self, task_name: str, n_train: int) -> TaskData:
        """The task's samples with the regime's `n_train` labelled training cases."""
        key = (task_name, n_train)
        if key not in self._regimes:
            data = self.task_data(task_name)[0]
            if data is None:
                raise ValueError(f"task {task_name} has no usable data; it should not be planned")
            self._regimes[key] = with_train_cases(data, n_train, self.cfg.data.data_seed)
        return self._regimes[key]


_INPUTS: dict[str, StudyInputs] = {}


def inputs_for(cfg: StudyConfig) -> StudyInputs:
    """This process's `StudyInputs` for the config (cached by config hash)."""
    key = cfg.hash()
    if key not in _INPUTS:
        _INPUTS.clear()
        _INPUTS[key] = StudyInputs(cfg)
    return _INPUTS[key]


def execute_unit(unit: WorkUnit, study_dir: Path, cfg: StudyConfig, inputs: StudyInputs,
                 log=print) -> dict[str, float]:
    """Run one unit into `study_dir` (skipping runs already finished there); returns seconds
    per stage. Pins the thread count of DESIGN.md §7; every run seeds itself from the config.
    Freed host memory stays in the process (`train.host_memory`): faster CPU steps, same numbers."""
    from taskalign.study.alignment import align_cell

    torch.set_num_threads(cfg.train.threads)
    keep_freed_memory()
    seconds: dict[str, float] = {}

    def timed(stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
        return out

    if unit.kind == "pretrain":
        timed(f"pretrain {unit.encoder}", ensure_pretrained, study_dir, unit.encoder, cfg, log=log)
        return seconds
    data = timed("data", inputs.regime_data, unit.task, unit.n_train)
    if unit.kind == "specialised":
        timed("specialised", run_specialised, study_dir, cfg, data, unit.seed)
        return seconds
    weights = weights_path(study_dir, cfg, unit.encoder)
    timed("scratch", run_vfm, study_dir, cfg, data, unit.encoder, unit.seed, weights=None)
    timed("fine-tune", run_vfm, study_dir, cfg, data, unit.encoder, unit.seed, weights=weights)
    timed("alignment", align_cell, study_dir, cfg, data, unit.encoder, unit.seed, weights)
    return seconds
