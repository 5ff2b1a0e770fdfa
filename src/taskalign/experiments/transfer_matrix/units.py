"""The transfer matrix's work units and `run_matrix`.

    source       (encoder, source)               sources/<encoder>/<source>/ (sources.py)
    scratch      (encoder, task, seed)           runs/none/cells/<encoder>-scratch/<task>/n<N>/seed<s>
    specialised  (task, seed)                    runs/none/cells/specialised/<task>/n<N>/seed<s>
    finetune     (encoder, source, task, seed)   runs/<source>/cells/<encoder>/<task>/n<N>/seed<s>,
                                                 with its alignment.json (D2P, D2R, D2S as in the study)
    advise       (encoder, task)                 advise/<encoder>/<task>.json: `taskalign.advise` on
                                                 every source's frozen features of the labelled
                                                 target cases (seed 0's), before any fine-tuning

Every source's fine-tuned run is paired with the one scratch run of its (encoder, task, seed): the
same head initialisation, batches and steps (the study's seeds do not depend on the start
weights), so gains and D2S share one baseline. Sources, scratch and specialised runs are
independent (stage 1); fine-tuning needs its source and its scratch run (stage 2). Each folder's
completion record is written last, so a killed matrix resumes with the same command.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from taskalign import io
from taskalign.errors import UserError
from taskalign.experiments.transfer_matrix.config import MatrixConfig, matrix_config_from_dict
from taskalign.experiments.transfer_matrix.sources import make_source, source_dir, source_done, source_weights
from taskalign.study.cell import is_done, run_dir, run_specialised, run_vfm
from taskalign.study.units import StudyInputs

SCRATCH = "none"


@dataclass(frozen=True)
class MatrixUnit:
    kind: str                   # "source" | "scratch" | "specialised" | "finetune"
    encoder: str | None = None
    source: str | None = None
    task: str | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        parts = [self.kind] + [str(p) for p in (self.encoder, self.source, self.task) if p]
        return " / ".join(parts + ([f"seed {self.seed}"] if self.seed is not None else []))

    def folder(self, matrix_dir: Path, mcfg: MatrixConfig) -> Path:
        if self.kind == "source":
            return source_dir(matrix_dir, self.encoder, self.source)
        if self.kind == "advise":
            return Path(matrix_dir) / "advise" / self.encoder
        model = {"scratch": f"{self.encoder}-scratch", "specialised": "specialised"}.get(self.kind, self.encoder)
        runs = runs_dir(matrix_dir, SCRATCH if self.kind != "finetune" else self.source)
        return run_dir(runs, model, self.task, mcfg.n_train, self.seed)

    def done(self, matrix_dir: Path, mcfg: MatrixConfig) -> bool:
        if self.kind == "source":
            return source_done(matrix_dir, self.encoder, self.source)
        folder = self.folder(matrix_dir, mcfg)
        if self.kind == "advise":
            return (folder / f"{self.task}.json").exists()
        return is_done(folder) and (self.kind != "finetune" or (folder / "alignment.json").exists())


def runs_dir(matrix_dir: Path, source: str) -> Path:
    """The study-like folder of one source's runs (the scratch and specialised runs under `none`)."""
    return Path(matrix_dir) / "runs" / source


def plan(mcfg: MatrixConfig) -> list[list[MatrixUnit]]:
    pre = [MatrixUnit("source", encoder=e, source=s) for e in mcfg.encoders for s in mcfg.sources if s != SCRATCH]
    base = [MatrixUnit("specialised", task=t, seed=seed) for t in mcfg.targets for seed in mcfg.seeds]
    base += [MatrixUnit("scratch", encoder=e, task=t, seed=seed)
             for e in mcfg.encoders for t in mcfg.targets for seed in mcfg.seeds]
    fine = [MatrixUnit("finetune", encoder=e, source=s, task=t, seed=seed) for e in mcfg.encoders
            for s in mcfg.sources if s != SCRATCH for t in mcfg.targets for seed in mcfg.seeds]
    fine += [MatrixUnit("advise", encoder=e, task=t) for e in mcfg.encoders for t in mcfg.targets]
    return [pre + base, fine]


def execute_matrix_unit(unit: MatrixUnit, matrix_dir: Path, mcfg: MatrixConfig, inputs: StudyInputs,
                        log=print) -> dict[str, float]:
    """Run one unit (skipping what is finished); returns seconds per stage."""
    from taskalign.study.alignment import align_cell

    cfg = mcfg.study()
    torch.set_num_threads(cfg.train.threads)
    start = time.perf_counter()
    if unit.kind == "source":
        make_source(matrix_dir, mcfg, unit.encoder, unit.source, log=log)
        return {f"source {unit.source}": time.perf_counter() - start}
    data = inputs.regime_data(unit.task, mcfg.n_train)
    if unit.kind == "advise":
        advise_sources(matrix_dir, mcfg, inputs, unit.encoder, unit.task, data)
    elif unit.kind == "specialised":
        run_specialised(runs_dir(matrix_dir, SCRATCH), cfg, data, unit.seed)
    elif unit.kind == "scratch":
        run_vfm(runs_dir(matrix_dir, SCRATCH), cfg, data, unit.encoder, unit.seed, weights=None)
    else:
        weights = source_weights(matrix_dir, unit.encoder, unit.source)
        runs = runs_dir(matrix_dir, unit.source)
        run_vfm(runs, cfg, data, unit.encoder, unit.seed, weights=weights)
        scratch = MatrixUnit("scratch", encoder=unit.encoder, task=unit.task, seed=unit.seed).folder(matrix_dir, mcfg)
        align_cell(runs, cfg, data, unit.encoder, unit.seed, weights, scratch_dir=scratch)
    return {unit.kind: time.perf_counter() - start}


def advise_sources(matrix_dir: Path, mcfg: MatrixConfig, inputs: StudyInputs, encoder: str, task: str,
                   data) -> dict:
    """advise/<encoder>/<task>.json: every estimator on every source (`none`: random init) from
    the frozen features of the target's labelled training cases, no intervals (resamples=0)."""
    from taskalign.advise.advise import advise
    from taskalign.advise.candidates import Candidate
    from taskalign.advise.target import TargetData

    size = mcfg.study().encoder_size
    ids = {s.case_id for s in data.train}
    cases = [c for c in inputs.cohort.train if c.case_id in ids]
    target = TargetData(f"the matrix's {len(cases)} labelled {task} cases", cases, inputs.cohort.reference,
                        mcfg.study().data.data_seed)
    candidates = [Candidate(s, encoder, size, source_weights(matrix_dir, encoder, s),
                            "random" if s == SCRATCH else "file") for s in mcfg.sources]
    result = advise(task, candidates, target, resamples=0, seed=0)
    io.write_json(Path(matrix_dir) / "advise" / encoder / f"{task}.json", result)
    return result


_WORKER_INPUTS: dict[str, StudyInputs] = {}


def _process_inputs(mcfg: MatrixConfig) -> StudyInputs:
    """This worker process's cohort and task samples for the matrix (built once, seeded)."""
    if mcfg.hash() not in _WORKER_INPUTS:
        _WORKER_INPUTS.clear()
        _WORKER_INPUTS[mcfg.hash()] = StudyInputs(mcfg.study())
    return _WORKER_INPUTS[mcfg.hash()]


def run_matrix_unit_in_worker(unit: dict, matrix_dir: str, cfg_dict: dict) -> tuple[dict, list[str]]:
    """A worker process's job (the local backend's `worker`): one unit; (seconds, log lines)."""
    mcfg = matrix_config_from_dict(cfg_dict)
    lines: list[str] = []
    seconds = execute_matrix_unit(MatrixUnit(**unit), Path(matrix_dir), mcfg, _process_inputs(mcfg), log=lines.append)
    return seconds, lines


def matrix_unit_inputs(unit: MatrixUnit, matrix_dir: Path, mcfg: MatrixConfig) -> dict[str, bytes]:
    """Files a Ray worker needs (the Ray backend's `inputs_of`): what is finished in the unit's
    own folder; a fine-tuning unit's source (weights, cached reference features) and scratch run;
    an advise unit's sources."""
    from taskalign.study.backends.ray_backend import files_under

    folders = [unit.folder(matrix_dir, mcfg)]
    if unit.kind == "finetune":
        folders += [source_dir(matrix_dir, unit.encoder, unit.source),
                    MatrixUnit("scratch", encoder=unit.encoder, task=unit.task, seed=unit.seed).folder(matrix_dir, mcfg)]
    if unit.kind == "advise":
        folders += [source_dir(matrix_dir, unit.encoder, s) for s in mcfg.sources if s != SCRATCH]
    files: dict[str, bytes] = {}
    for folder in folders:
        files.update(files_under(Path(matrix_dir), folder))
    return files


def run_matrix_unit_in_scratch(unit: dict, cfg_dict: dict, shipped: dict[str, bytes]) -> dict:
    """The Ray task (the Ray backend's `remote`): one unit in a scratch matrix folder."""
    from taskalign.study.backends.ray_backend import in_scratch_folder

    mcfg = matrix_config_from_dict(cfg_dict)
    return in_scratch_folder(shipped, lambda folder: execute_matrix_unit(
        MatrixUnit(**unit), folder, mcfg, _process_inputs(mcfg), log=lambda m: None))


class MatrixConfigMismatch(UserError, RuntimeError):
    """The folder holds a transfer matrix with another configuration."""


def run_matrix(out: Path, mcfg: MatrixConfig, workers: int = 1, force: bool = False, log=print,
               progress=None, backend: str = "local", address: str | None = None) -> dict:
    """Run (or resume) the transfer matrix into `out` on the local backend (`workers` processes)
    or on Ray (`address`: the cluster's; None starts a local instance), then write its analysis
    (analysis.py)."""
    from taskalign.experiments.transfer_matrix.analysis import write_analysis
    from taskalign.study.backends import create_backend
    from taskalign.study.lock import study_lock
    from taskalign.study.runner import Timer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with study_lock(out):
        cfg_path = out / "matrix_config.json"
        if cfg_path.exists() and not force:
            old = io.read_json(cfg_path)
            if old.get("hash") != mcfg.hash():
                raise MatrixConfigMismatch(f"{out} holds a transfer matrix with another configuration "
                                           f"(hash {old.get('hash')} vs {mcfg.hash()}); use another folder or --force")
        io.write_json(cfg_path, {"hash": mcfg.hash(), "sources": list(mcfg.sources), **mcfg.to_dict()})
        timer = Timer(out / "timing.json")
        runner = create_backend(backend, address, workers)
        if runner.name == "ray":
            runner.run(plan(mcfg), out, mcfg, None, timer.add, log, progress,
                       remote=run_matrix_unit_in_scratch, inputs_of=matrix_unit_inputs)
        else:
            runner.run(plan(mcfg), out, mcfg, StudyInputs(mcfg.study()), timer.add, log, progress,
                       execute=execute_matrix_unit, worker=run_matrix_unit_in_worker, first_stage_here=False)
        return write_analysis(out, mcfg)
