"""The local backend: every unit in this process, in plan order (the default)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from taskalign.errors import UserError
from taskalign.study.config import StudyConfig
from taskalign.study.units import StudyInputs, WorkUnit, execute_unit

Progress = Callable[[str, int, int], None]


class UnitFailed(UserError, RuntimeError):
    """Some units of the study failed; the others finished and were gathered."""


def count_done(stages: list[list[WorkUnit]], study_dir: Path, cfg: StudyConfig) -> tuple[int, int]:
    units = [u for stage in stages for u in stage]
    return sum(u.done(study_dir, cfg) for u in units), len(units)


class LocalBackend:
    name = "local"

    def run(self, stages: list[list[WorkUnit]], study_dir: Path, cfg: StudyConfig, inputs: StudyInputs,
            add_seconds: Callable[[dict[str, float]], None], log: Callable[[str], None],
            progress: Progress | None) -> None:
        """Run every unfinished unit, stage after stage; an error stops the study (its finished
        units stay on disk and are not recomputed on the next run)."""
        done, total = count_done(stages, study_dir, cfg)
        for stage in stages:
            for unit in stage:
                if unit.done(study_dir, cfg):
                    continue
                if progress:
                    progress(unit.name, done, total)
                add_seconds(execute_unit(unit, study_dir, cfg, inputs, log=log))
                done += 1
        if progress:
            progress("done", done, total)
