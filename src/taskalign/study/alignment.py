"""The alignment stage of a cell: D2P, D2R, D2S with CKA and energy distance (DESIGN.md §6).

All four feature states (fine-tuned, pretrained, random init, scratch) are features of the *same*
probe (test) images, so every D2x is a paired MMD² (`align.drift`). Two features are measured:

  primary ("d2p", "d2r", "d2s", "cka", "sigma_ref" in alignment.json): what the task's head
      reads (`align.head_features.head_bank`: the last map's spatial mean for every task kind);
  secondary ("pooled": the same fields): the encoder's pooled feature;

and a per-stage D2P profile ("layers"). Each feature has its encoder's reference kernel
(`align.drift.reference_kernel`): σ_ref from the union of the pretrained and the random-init
encoder's features on the fixed reference probe set. The random-init reference encoder is built
with one fixed seed per encoder, `reference_init_seed` (the study seed and the encoder's name, no
task, no cell seed), so one kernel serves every task and seed of the encoder and values compare
across tasks. For ProViCNet the features are concatenations over the sequences the task feeds, so
the reference is taken per (encoder, input sequences): the same reference cases, seen through the
same sequences as the task.

Each D2x record: mmd2, p_value, n, p_value_method, saturation (MMD² over its ceiling), saturated
(saturation >= align.drift.SATURATED) and energy (the paired energy distance, no bandwidth).

"early": D2P and energy distance of the fine-tuned run's early checkpoints (`cell.early_checkpoints`:
after the first epoch, and near 10 % of the steps) against the pretrained state, on the primary
feature with its reference kernel: [{"state", "step", "d2p", "saturation", "e2p"}]; [] for runs
saved without early features.
"""
from __future__ import annotations

from pathlib import Path

import torch

from taskalign import io
from taskalign.align.drift import (DRIFT_NAMES, REFERENCE_SCALES, DriftResult, drift_profiles, layer_profile,
                                   reference_kernels)
from taskalign.align.extract import load_probe_banks, probe_features, save_probe_banks
from taskalign.align.head_features import HEAD_READS, POOLED, head_bank
from taskalign.study.cell import TaskData, derive_seed, early_checkpoints, run_dir
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import load_encoder, weights_dir

REFERENCE_STATES = ("pretrained", "random")


def reference_init_seed(cfg: StudyConfig, encoder_name: str) -> int:
    """The seed of the random-init reference encoder: one per (study seed, encoder)."""
    return derive_seed(cfg.study_seed, encoder_name, "reference-random-init")


def _reference(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str,
               weights: Path) -> dict[str, dict[str, torch.Tensor]]:
    """{"pretrained": banks, "random": banks} of the encoder on the reference probe set, cached
    under reference_<seqs>/features/ beside in-house weights, or inside the study for user-given
    files (`pretrain_stage.weights_dir`); banks as `align.extract.probe_features`."""
    sequences = data.task.input_sequences
    folder = weights_dir(study_dir, encoder_name, cfg, weights) / f"reference_{'-'.join(sequences)}"
    out = {}
    for state in REFERENCE_STATES:
        banks = load_probe_banks(folder, state)
        if banks is None:
            torch.manual_seed(reference_init_seed(cfg, encoder_name))   # the random state's init
            encoder = load_encoder(encoder_name, cfg, sequences, weights if state == "pretrained" else None)
            inputs = [encoder.preprocess(s.input, s.input_sequences, s.gland) for s in data.reference]
            banks = probe_features(encoder, inputs)
            save_probe_banks(folder, state, banks)
        out[state] = banks
    return out


def _cell_banks(ft_dir: Path, sc_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    folders = {"finetuned": ft_dir, "pretrained": ft_dir, "random": sc_dir, "scratch": sc_dir}
    banks = {state: load_probe_banks(folder, state) for state, folder in folders.items()}
    missing = [str(folders[s] / "features" / f"{s}.pt") for s, b in banks.items() if b is None]
    if missing:
        raise FileNotFoundError(f"alignment needs the probe features {missing}; the fine-tuned and scratch "
                                "runs write them, so rerun the study to finish those runs")
    return banks


def drift_record(res: DriftResult) -> dict:
    """One D2x of alignment.json (module docstring)."""
    return {"mmd2": float(res.mmd2), "p_value": None if res.p_value is None else float(res.p_value),
            "n": int(res.n), "p_value_method": res.p_value_method, "saturation": res.saturation,
            "saturated": res.saturated, "energy": res.energy}


def _feature_record(profiles: dict[str, dict[str, DriftResult]], view: str, kernel) -> dict:
    """sigma_ref, kernel, d2p/d2r/d2s and CKA of one feature ("head" or "pooled")."""
    record = {"sigma_ref": float(kernel.bandwidths[REFERENCE_SCALES.index(1.0)]), "kernel": kernel.describe()}
    for name in DRIFT_NAMES:
        record[name.lower()] = drift_record(profiles[name][view])
    states = dict(zip(DRIFT_NAMES, ("pretrained", "random", "scratch")))
    record["cka"] = {states[name]: profiles[name][view].cka for name in DRIFT_NAMES}
    return record


def _layers(banks: dict[str, dict[str, torch.Tensor]], kernels) -> list[dict]:
    """D2P, its saturation and energy distance, and CKA(fine-tuned, pretrained) per encoder stage,
    each stage with its own reference kernel; [] for runs saved without stage features."""
    stages = [name for name in kernels if name != POOLED]
    profile = layer_profile({n: banks["finetuned"][n] for n in stages}, {n: banks["pretrained"][n] for n in stages},
                            kernels, permutations=0)
    return [{"stage": int(name[len("stage"):]), "dim": int(banks["finetuned"][name].shape[1]),
             "d2p": float(res.mmd2), "cka_pretrained": res.cka, "saturation": res.saturation, "e2p": res.energy}
            for name, res in profile.items()]


def _early(ft_dir: Path, banks: dict[str, dict[str, torch.Tensor]], feature: str, kernel, steps: dict[str, int]
           ) -> list[dict]:
    """The "early" list of alignment.json (module docstring)."""
    out = []
    for state, step in steps.items():
        early = load_probe_banks(ft_dir, state)
        if early is None or feature not in early:
            continue
        res = layer_profile({feature: early[feature]}, {feature: banks["pretrained"][feature]}, {feature: kernel},
                            permutations=0)[feature]
        out.append({"state": state, "step": step, "d2p": float(res.mmd2), "saturation": res.saturation,
                    "e2p": res.energy})
    return out


def align_cell(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, seed: int,
               weights: Path, scratch_dir: Path | None = None) -> dict:
    """alignment.json of one (encoder, task, seed) cell (module docstring); a cell that has one
    is never recomputed. `scratch_dir`: the scratch run's folder when it lies outside
    `study_dir` (the transfer matrix shares one scratch run among its sources)."""
    task = data.task
    ft_dir = run_dir(study_dir, encoder_name, task.name, len(data.train), seed)
    out = ft_dir / "alignment.json"
    if out.exists():
        return io.read_json(out)
    banks = _cell_banks(ft_dir, scratch_dir or run_dir(study_dir, f"{encoder_name}-scratch", task.name,
                                                         len(data.train), seed))
    reference = _reference(study_dir, cfg, data, encoder_name, weights)
    shared = [n for n in banks["finetuned"] if all(n in b for b in (*banks.values(), *reference.values()))]
    kernels = reference_kernels({n: reference["pretrained"][n] for n in shared},
                                {n: reference["random"][n] for n in shared})
    has_stages = any(n != POOLED for n in shared)
    primary = head_bank(task.kind, shared) if has_stages else POOLED   # old runs: no stage features saved
    views = {"head": primary, "pooled": POOLED}
    by_view = {state: {v: b[name] for v, name in views.items()} for state, b in banks.items()}
    profiles = drift_profiles(by_view["finetuned"], {v: kernels[name] for v, name in views.items()},
                              pretrained=by_view["pretrained"], random=by_view["random"], scratch=by_view["scratch"],
                              permutations=cfg.align.permutations,
                              seed=derive_seed(cfg.study_seed, encoder_name, task.name, seed, "permutation"))
    record = {"n_probe": int(banks["finetuned"][POOLED].shape[0]), "feature": primary,
              "feature_rule": f"what the {task.kind} head reads: {HEAD_READS.get(task.kind)}" if has_stages
              else "pooled (the runs saved no stage features)",
              **_feature_record(profiles, "head", kernels[primary]),
              "pooled": _feature_record(profiles, "pooled", kernels[POOLED]),
              "layers": _layers(banks, {n: k for n, k in kernels.items() if n != POOLED}),
              "early": _early(ft_dir, banks, primary, kernels[primary],
                              early_checkpoints(cfg.train.steps, cfg.train.steps_per_epoch))}
    io.write_json(out, record)
    return record
