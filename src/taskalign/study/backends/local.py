"""The local backend: the study's units on this machine, in one process or in worker processes.

- `workers=1` (the API default): every unit in this process, in plan order; an error stops the
  study (its finished units stay on disk and are not recomputed on the next run).
- `workers=N`: the pretraining stage in this process, then the other units in N spawned worker
  processes, each pinned to `train.threads` threads (the CLI's default is one worker per
  `train.threads` cores). Units write disjoint folders of the same study folder and seed
  themselves from the config, so a unit gives the same numbers in a worker as in this process.
  Cells (two runs each) are handed out before the specialised models (one run each), which
  keeps the last worker's tail short. A unit that raised is reported, the others go
  on, and the study ends with `UnitFailed`.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from taskalign.errors import UserError
from taskalign.study.config import StudyConfig, config_from_dict
from taskalign.study.units import StudyInputs, WorkUnit, execute_unit

Progress = Callable[[str, int, int], None]


class UnitFailed(UserError, RuntimeError):
    """Some units of the study failed; the others finished and were gathered."""


def count_done(stages: list[list[WorkUnit]], study_dir: Path, cfg: StudyConfig) -> tuple[int, int]:
    units = [u for stage in stages for u in stage]
    return sum(u.done(study_dir, cfg) for u in units), len(units)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def default_workers(cfg: StudyConfig) -> int:
    """One worker per `train.threads` cores on a CPU machine; one (this process) on a GPU."""
    from taskalign.train.device import default_device

    if default_device().type != "cpu":
        return 1
    return max(1, usable_cpus() // max(1, cfg.train.threads))


def longest_first(units: list[WorkUnit]) -> list[WorkUnit]:
    """Units in the order a pool should start them: cells (two runs) before specialised models
    (one run), plan order otherwise. (Putting case-level tasks last made the quick study's tail
    one ProViCNet classification cell, 110 s on one worker: slice-wise encoders see every slice
    there.)"""
    return sorted(units, key=lambda u: u.kind not in ("cell", "finetune"))


_WORKER_INPUTS: dict[tuple[str, str], StudyInputs] = {}


def run_in_worker(unit: dict[str, Any], study_dir: str, cfg_dict: dict[str, Any]) -> tuple[dict, list[str]]:
    """A worker process's job: run one unit in the study folder; returns (seconds, log lines)."""
    cfg = config_from_dict(cfg_dict)
    key = (cfg.hash(), study_dir)
    if key not in _WORKER_INPUTS:   # the cohort is built once per worker (seeded: as in the driver)
        _WORKER_INPUTS.clear()
        _WORKER_INPUTS[key] = StudyInputs(cfg, cache_dir=Path(study_dir) / "cache")
    lines: list[str] = []
    seconds = execute_unit(WorkUnit(**unit), Path(study_dir), cfg, _WORKER_INPUTS[key], log=lines.append)
    return seconds, lines


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def run(self, stages: list[list[WorkUnit]], study_dir: Path, cfg: StudyConfig, inputs: StudyInputs,
            add_seconds: Callable[[dict[str, float]], None], log: Callable[[str], None],
            progress: Progress | None, execute: Callable = execute_unit, worker: Callable = run_in_worker,
            first_stage_here: bool = True) -> None:
        """Run every unfinished unit, stage after stage (module docstring). `execute(unit, folder,
        cfg, inputs, log)` runs a unit here; `worker(unit as dict, folder, cfg.to_dict())` in a
        worker process (module-level, so spawned workers import it): the study's by default, the
        transfer matrix's for `taskalign experiment transfer-matrix`. `first_stage_here`: the
        first stage (the study's pretraining) runs in this process, not in the pool."""
        counts = dict(zip(("done", "total"), count_done(stages, study_dir, cfg)))
        for i, stage in enumerate(stages):
            todo = [u for u in stage if not u.done(study_dir, cfg)]
            if self.workers > 1 and (i > 0 or not first_stage_here) and len(todo) > 1:
                self._run_pool(todo, study_dir, cfg, add_seconds, log, progress, counts, worker)
                continue
            for unit in todo:
                if progress:
                    progress(unit.name, counts["done"], counts["total"])
                add_seconds(execute(unit, study_dir, cfg, inputs, log=log))
                counts["done"] += 1
        if progress:
            progress("done", counts["done"], counts["total"])

    def _run_pool(self, units, study_dir, cfg, add_seconds, log, progress, counts, worker=run_in_worker) -> None:
        cfg_dict, failures = cfg.to_dict(), []
        n = min(self.workers, len(units))
        log(f"local: {n} worker processes, {cfg.train.threads} thread(s) each")
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = {pool.submit(worker, dataclasses.asdict(u), str(study_dir), cfg_dict): u
                       for u in longest_first(units)}
            try:
                while pending:
                    if progress:
                        progress(f"{min(n, len(pending))} running, {max(0, len(pending) - n)} queued",
                                 counts["done"], counts["total"])
                    finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for future in finished:
                        unit = pending.pop(future)
                        try:
                            seconds, lines = future.result()
                        except Exception as err:   # the unit raised, or its worker died
                            last = (str(err).strip().splitlines() or [""])[-1]
                            failures.append(f"{unit.name}: {type(err).__name__}: {last}")
                            log(f"failed: {failures[-1]}")
                            continue
                        for line in lines:
                            log(line)
                        add_seconds(seconds)
                        counts["done"] += 1
            except BaseException:   # Ctrl-C: drop what has not started; finished units stay on disk
                for future in pending:
                    future.cancel()
                raise
        if failures:
            raise UnitFailed(f"{len(failures)} unit(s) failed (the others are saved; run the same "
                             "command again to retry them): " + "; ".join(failures))
