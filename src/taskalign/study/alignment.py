"""The alignment stage of a cell: D2P, D2R, D2S and CKA of one encoder on one task (DESIGN.md §6).

All four feature sets are pooled features of the *same* probe (test) images, so D2x use the
paired MMD² estimator. The kernel is the encoder's reference kernel: RBF kernels at
{1/4, 1/2, 1, 2, 4} × σ_ref averaged, σ_ref the median pairwise distance of the pretrained
encoder's pooled features on the fixed reference probe set. For ProViCNet the pooled feature is a
concatenation over the sequences the task feeds, so σ_ref is taken per (encoder, input
sequences): the same reference cases, seen through the same sequences as the task.
"""
from __future__ import annotations

from pathlib import Path

from taskalign.align.cka import linear_cka
from taskalign.align.drift import REFERENCE_SCALES, drift, reference_kernel
from taskalign import io
from taskalign.study.cell import TaskData, derive_seed, probe_features, run_dir
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import load_encoder, weights_dir


def _reference(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, weights: Path):
    """(pooled, [stage means]) of the pretrained encoder on the reference probe set, cached as
    reference_<seqs>.pt and reference_<seqs>_stages/<k>.pt beside in-house weights, or inside the
    study for user-given files (`pretrain_stage.weights_dir`)."""
    key = "-".join(data.task.input_sequences)
    path = weights_dir(study_dir, encoder_name, cfg, weights) / f"reference_{key}.pt"
    stage_dir = path.with_name(f"reference_{key}_stages")
    if path.exists() and stage_dir.is_dir():
        stages = sorted(stage_dir.glob("*.pt"), key=lambda p: int(p.stem))
        return io.load_tensor(path), [io.load_tensor(p) for p in stages]
    encoder = load_encoder(encoder_name, cfg, data.task.input_sequences, weights)
    inputs = [encoder.preprocess(s.input, s.input_sequences, s.gland) for s in data.reference]
    pooled, stages = probe_features(encoder, inputs)
    for k, feats in enumerate(stages):
        io.save_tensor(stage_dir / f"{k}.pt", feats)
    io.save_tensor(path, pooled)
    return pooled, stages


def layer_profile(ft_dir: Path, reference_stages: list) -> list[dict]:
    """D2P and CKA(fine-tuned, pretrained) per encoder stage (spatial means of `maps`), each stage
    with its own reference kernel; [] for runs saved without stage features."""
    layers = []
    for k, ref in enumerate(reference_stages):
        ft, pre = (ft_dir / "features" / "stages" / f"{state}_{k}.pt" for state in ("finetuned", "pretrained"))
        if not (ft.exists() and pre.exists()):
            return []
        a, b = io.load_tensor(ft), io.load_tensor(pre)
        res = drift(a, b, reference_kernel(ref), permutations=0, with_cka=False)
        layers.append({"stage": k, "dim": int(a.shape[1]), "d2p": float(res.mmd2),
                       "cka_pretrained": float(linear_cka(a, b))})
    return layers


def align_cell(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, seed: int,
               weights: Path) -> dict:
    task = data.task
    ft_dir = run_dir(study_dir, encoder_name, task.name, len(data.train), seed)
    out = ft_dir / "alignment.json"
    if out.exists():
        return io.read_json(out)
    sc_dir = run_dir(study_dir, f"{encoder_name}-scratch", task.name, len(data.train), seed)
    feats = {"finetuned": io.load_tensor(ft_dir / "features" / "finetuned.pt"),
             "pretrained": io.load_tensor(ft_dir / "features" / "pretrained.pt"),
             "random": io.load_tensor(sc_dir / "features" / "random.pt"),
             "scratch": io.load_tensor(sc_dir / "features" / "scratch.pt")}
    ref_pooled, ref_stages = _reference(study_dir, cfg, data, encoder_name, weights)
    kernel = reference_kernel(ref_pooled)
    seed_perm = derive_seed(cfg.study_seed, encoder_name, task.name, seed, "permutation")
    sigma_ref = kernel.bandwidths[REFERENCE_SCALES.index(1.0)]
    record = {"n_probe": int(feats["finetuned"].shape[0]), "sigma_ref": float(sigma_ref),
              "kernel": kernel.describe()}
    for name, other in (("d2p", "pretrained"), ("d2r", "random"), ("d2s", "scratch")):
        res = drift(feats["finetuned"], feats[other], kernel, permutations=cfg.align.permutations, seed=seed_perm,
                    with_cka=False)
        record[name] = {"mmd2": float(res.mmd2), "p_value": float(res.p_value), "n": int(res.n),
                        "p_value_method": res.p_value_method, "saturation": res.saturation}
    record["cka"] = {other: float(linear_cka(feats["finetuned"], feats[other]))
                     for other in ("pretrained", "random", "scratch")}
    record["layers"] = layer_profile(ft_dir, ref_stages)
    io.write_json(out, record)
    return record
