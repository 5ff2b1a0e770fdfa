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
from taskalign.study import io
from taskalign.study.cell import TaskData, derive_seed, pooled_features, run_dir
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import load_encoder, weights_dir


def reference_features(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, weights: Path):
    """Pretrained pooled features of the reference probe set for the task's sequences (cached)."""
    key = "-".join(data.task.input_sequences)
    path = weights_dir(study_dir, encoder_name, cfg, weights) / f"reference_{key}.pt"
    if path.exists():
        return io.load_tensor(path)
    encoder = load_encoder(encoder_name, cfg, data.task.input_sequences, weights)
    inputs = [encoder.preprocess(s.input, s.input_sequences, s.gland) for s in data.reference]
    feats = pooled_features(encoder, inputs)
    io.save_tensor(path, feats)
    return feats


def align_cell(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, seed: int,
               weights: Path) -> dict:
    task = data.task
    ft_dir = run_dir(study_dir, encoder_name, task.name, seed)
    out = ft_dir / "alignment.json"
    if out.exists():
        return io.read_json(out)
    sc_dir = run_dir(study_dir, f"{encoder_name}-scratch", task.name, seed)
    feats = {"finetuned": io.load_tensor(ft_dir / "features" / "finetuned.pt"),
             "pretrained": io.load_tensor(ft_dir / "features" / "pretrained.pt"),
             "random": io.load_tensor(sc_dir / "features" / "random.pt"),
             "scratch": io.load_tensor(sc_dir / "features" / "scratch.pt")}
    kernel = reference_kernel(reference_features(study_dir, cfg, data, encoder_name, weights))
    seed_perm = derive_seed(cfg.study_seed, encoder_name, task.name, seed, "permutation")
    sigma_ref = kernel.bandwidths[REFERENCE_SCALES.index(1.0)]
    record = {"n_probe": int(feats["finetuned"].shape[0]), "sigma_ref": float(sigma_ref),
              "kernel": kernel.describe()}
    for name, other in (("d2p", "pretrained"), ("d2r", "random"), ("d2s", "scratch")):
        res = drift(feats["finetuned"], feats[other], kernel, permutations=cfg.align.permutations, seed=seed_perm,
                    with_cka=False)
        record[name] = {"mmd2": float(res.mmd2), "p_value": float(res.p_value), "n": int(res.n),
                        "p_value_method": res.p_value_method}
    record["cka"] = {other: float(linear_cka(feats["finetuned"], feats[other]))
                     for other in ("pretrained", "random", "scratch")}
    io.write_json(out, record)
    return record
