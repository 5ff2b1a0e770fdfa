"""The Ray backend: each work unit is a Ray task (DESIGN.md §9).

    taskalign study --preset quick --out runs/q --backend ray --address 10.0.0.1:6379

- The pretraining stage runs first (one task per encoder, in parallel), then every specialised
  model and cell of the grid is submitted at once.
- Resources: one GPU per unit when the cluster has GPUs, else `train.threads` CPUs per unit; the
  worker pins the same thread count and the runs seed themselves from the config, so a unit gives
  the numbers it gives locally.
- Files travel through the object store, so workers need no shared file system: the driver ships
  a unit's inputs (its encoder's pretrained weights, and what a killed earlier attempt already
  finished in the unit's folders); the worker runs the unit in a scratch copy of the study folder
  and returns the files it wrote; the driver writes them into the study folder, completion
  records last. Only the driver writes the study folder.
- A unit whose worker died (process killed, node lost) is retried by Ray (`max_retries`); a unit
  that raised is reported as failed, the others go on, and the study ends with `UnitFailed`.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from taskalign import io
from taskalign.study.backends.local import Progress, UnitFailed, count_done
from taskalign.study.config import StudyConfig, config_from_dict
from taskalign.encoders.weights.provicnet import parse_entries
from taskalign.study.units import StudyInputs, WorkUnit, execute_unit, inputs_for, weights_path

COMPLETION_RECORDS = ("metrics.json", "alignment.json", "curve.json")
PUBLISHED = "published"   # scratch-folder home of published weights files shipped to a worker


def import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("--backend ray needs Ray: pip install 'taskalign[ray]' (or pip install ray)") from None
    return ray


def files_under(root: Path, folder: Path) -> dict[str, bytes]:
    """{path relative to root: bytes} of the files under `folder` (hidden files left out)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            and not p.name.startswith(".")}


def unit_inputs(unit: WorkUnit, study_dir: Path, cfg: StudyConfig) -> dict[str, bytes]:
    """What a worker needs besides the config: files already finished in the unit's own folders
    and, for a cell, its encoder's pretrained weights (with cached reference features)."""
    files: dict[str, bytes] = {}
    for folder in unit.folders(study_dir, cfg):
        files.update(files_under(study_dir, folder))
    if unit.kind == "cell":
        given = dict(cfg.weights).get(unit.encoder)
        if given is not None:  # one file, or one per sequence (published ProViCNet)
            for _, path in parse_entries(given):
                files[f"{PUBLISHED}/{unit.encoder}/{path.name}"] = path.read_bytes()
        else:
            files.update(files_under(study_dir, weights_path(study_dir, cfg, unit.encoder).parent))
    return files


def _relocated(spec: str, folder: Path) -> str:
    """A `--weights` spec with every file moved into `folder` (where the worker wrote it)."""
    return ",".join(f"{seq}:{folder / path.name}" if seq else str(folder / path.name)
                    for seq, path in parse_entries(spec))


def in_scratch_folder(shipped: dict[str, bytes], run: Callable[[Path], dict[str, float]]) -> dict:
    """Write the shipped files into a fresh scratch folder, `run(folder)` there, and return
    {"files": what the run wrote besides the shipped files, "seconds", "host"}."""
    scratch = Path(tempfile.mkdtemp(prefix="taskalign-unit-"))
    try:
        for rel, data in shipped.items():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_bytes(data)
        seconds = run(scratch)
        files = {rel: data for rel, data in files_under(scratch, scratch).items()
                 if rel not in shipped and not rel.startswith(PUBLISHED + "/")}
        return {"files": files, "seconds": seconds, "host": os.uname().nodename}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_unit_in_scratch(unit: dict[str, Any], cfg_dict: dict[str, Any], shipped: dict[str, bytes]) -> dict:
    """The Ray task: run one unit in a scratch study folder; return {"files", "seconds"}."""
    cfg = config_from_dict(cfg_dict)

    def run(scratch: Path) -> dict[str, float]:
        published = {e: _relocated(spec, scratch / PUBLISHED / e) for e, spec in cfg.weights}
        run_cfg = dataclasses.replace(cfg, weights=tuple(published.items())) if published else cfg
        return execute_unit(WorkUnit(**unit), scratch, run_cfg, inputs_for(cfg), log=lambda s: None)
    return in_scratch_folder(shipped, run)


def write_unit_files(study_dir: Path, files: dict[str, bytes]) -> None:
    """Write a worker's files into the study folder, completion records last, each atomically."""
    root = Path(study_dir).resolve()
    order = sorted(files, key=lambda rel: (Path(rel).name in COMPLETION_RECORDS, rel))
    for rel in order:
        path = (root / rel).resolve()
        if root not in path.parents:
            raise ValueError(f"a worker returned the file {rel!r}, outside the study folder {root}")
        io.write_bytes(path, files[rel])


@dataclasses.dataclass
class RayBackend:
    address: str | None = None
    max_retries: int = 3           # re-runs of a unit whose worker died
    poll_seconds: float = 2.0
    name: str = "ray"

    def run(self, stages: list[list[WorkUnit]], study_dir: Path, cfg: StudyConfig, inputs: StudyInputs,
            add_seconds: Callable[[dict[str, float]], None], log: Callable[[str], None],
            progress: Progress | None, remote: Callable = None, inputs_of: Callable = None) -> None:
        """Run every unfinished unit on the cluster, stage after stage (module docstring).
        `remote(unit as dict, cfg.to_dict(), shipped files)` is the Ray task and `inputs_of(unit,
        folder, cfg)` the files it is shipped: the study's (`run_unit_in_scratch`, `unit_inputs`)
        by default, the transfer matrix's for `taskalign experiment transfer-matrix`."""
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
        try:
            resources = ray.cluster_resources()
            if resources.get("GPU", 0) >= 1:
                options, slots = {"num_gpus": 1, "num_cpus": 1}, int(resources["GPU"])
            else:
                options = {"num_cpus": cfg.train.threads}
                slots = max(1, int(resources.get("CPU", 1) // cfg.train.threads))
            log(f"ray: {resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs; "
                f"each unit takes {options}")
            task = ray.remote(remote or run_unit_in_scratch).options(max_retries=self.max_retries, **options)
            counts = dict(zip(("done", "total"), count_done(stages, study_dir, cfg)), failed=0)
            failures: list[str] = []
            for stage in stages:
                failures += self._run_stage(ray, task, stage, study_dir, cfg, add_seconds, counts, slots, progress,
                                            inputs_of or unit_inputs)
                if failures and stage and stage[0].kind in ("pretrain", "source"):
                    raise UnitFailed("pretraining failed, no cell can run: " + "; ".join(failures))
            if failures:
                raise UnitFailed(f"{len(failures)} unit(s) failed (the others are saved; run the same "
                                 "command again to retry them): " + "; ".join(failures))
        finally:
            if started_here:
                ray.shutdown()

    def _run_stage(self, ray, task, stage, study_dir, cfg, add_seconds, counts, slots, progress,
                   inputs_of=unit_inputs) -> list[str]:
        cfg_dict = cfg.to_dict()
        pending = {task.remote(dataclasses.asdict(u), cfg_dict, inputs_of(u, study_dir, cfg)): u
                   for u in stage if not u.done(study_dir, cfg)}
        failures = []
        while pending:
            self._show(progress, counts, len(pending), slots)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_seconds)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # the unit raised (or died more than max_retries times)
                    counts["failed"] += 1
                    last = (str(err).strip().splitlines() or [""])[-1]
                    failures.append(f"{unit.name}: {type(err).__name__}: {last}")
                    continue
                write_unit_files(study_dir, result["files"])
                add_seconds(result["seconds"])
                counts["done"] += 1
        self._show(progress, counts, 0, slots)
        return failures

    @staticmethod
    def _show(progress, counts, in_flight: int, slots: int) -> None:
        if progress:
            running = min(in_flight, slots)
            progress(f"ray: {running} running, {in_flight - running} queued, {counts['failed']} failed",
                     counts["done"], counts["total"])

