"""The pretraining stage: each encoder family's own objective on the pretraining cohort, cached
on disk by config hash (`pretrain/<encoder>/<hash>/`); cells depend on it and never repeat it."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders.base import PRETRAINERS, Encoder, create_encoder
from taskalign.study import io
from taskalign.study.config import StudyConfig
from taskalign.train.device import default_device


def pretrain_key(encoder_name: str, cfg: StudyConfig) -> str:
    """Hash of everything the pretrained weights depend on (not the downstream training)."""
    d = cfg.data
    payload = {"encoder": encoder_name, "size": cfg.encoder_size, "pretrain": cfg.pretrain.__dict__,
               "cohort": {"seed": d.data_seed, "n": d.n_pretrain, "shape": d.shape, "spacing": d.spacing_mm,
                          "source": d.source}, "seed": cfg.study_seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:12]


def pretrained_dir(study_dir: Path, encoder_name: str, cfg: StudyConfig) -> Path:
    return Path(study_dir) / "pretrain" / encoder_name / pretrain_key(encoder_name, cfg)


def ensure_pretrained(study_dir: Path, encoder_name: str, cfg: StudyConfig, cases: list[Case],
                      log=print) -> Path:
    """Weights file of the in-house pretrained encoder, training it first if it is not cached."""
    out = pretrained_dir(study_dir, encoder_name, cfg)
    weights = out / "weights.safetensors"
    if (out / "curve.json").exists() and weights.exists():
        return weights
    torch.manual_seed(cfg.study_seed)
    encoder = create_encoder(encoder_name, size=cfg.encoder_size, input_sequences=SEQUENCES).to(default_device())
    family = encoder.family or encoder_name
    pretrain = PRETRAINERS.get(family)
    log(f"pretraining {encoder_name} ({family}) on {len(cases)} cases for {cfg.pretrain.steps} steps")
    start = time.perf_counter()
    losses = pretrain(encoder, cases, steps=cfg.pretrain.steps, batch_size=cfg.pretrain.batch_size,
                      lr=cfg.pretrain.lr, seed=cfg.study_seed)
    io.save_weights(weights, encoder.state_dict())
    io.write_json(out / "curve.json", {"loss": [float(v) for v in losses],
                                       "seconds": time.perf_counter() - start})  # written last
    return weights


def given_weights(encoder_name: str, cfg: StudyConfig) -> str | None:
    """The user's `--weights` file spec for this encoder (published or in-house files), or None."""
    return dict(cfg.weights).get(encoder_name)


def weights_dir(study_dir: Path, encoder_name: str, cfg: StudyConfig, weights: Path | str) -> Path:
    """Folder for what is derived from an encoder's start weights (reference features): beside
    in-house weights; inside the study for user-given files, never beside them."""
    spec = given_weights(encoder_name, cfg)
    if spec is None:
        return Path(weights).parent
    return Path(study_dir) / "pretrain" / encoder_name / ("given-" + hashlib.sha256(spec.encode()).hexdigest()[:12])


def load_encoder(encoder_name: str, cfg: StudyConfig, input_sequences: tuple[str, ...],
                 weights: Path | str | None) -> Encoder:
    """An encoder for a task's input sequences, with its start weights when `weights` is given
    (loaded key for key; a mismatch lists missing, unexpected and mis-shaped keys). When the
    user gave files for this encoder (`cfg.weights`), the architecture is the one they imply
    (published ProViCNet: one backbone per sequence) also for scratch runs (`weights=None`)."""
    from taskalign.encoders.weights import create_with_weights

    spec = given_weights(encoder_name, cfg)
    if spec is not None:
        return create_with_weights(encoder_name, cfg.encoder_size, input_sequences, spec, load=weights is not None)
    encoder = create_encoder(encoder_name, size=cfg.encoder_size, input_sequences=input_sequences)
    if weights is not None:
        from taskalign.encoders.weights import load_file_into
        load_file_into(encoder, weights, encoder_name)
    return encoder
