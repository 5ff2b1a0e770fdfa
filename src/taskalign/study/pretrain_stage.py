"""The pretraining stage: each encoder's start weights in the study folder
(`pretrain/<encoder>/<hash>/weights.safetensors` + `card.json`, the card written last): the
shipped in-house foundation weights, or the family's recipe re-run and gated; cells depend on
it and never repeat it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from taskalign.encoders.base import Encoder, create_encoder
from taskalign.errors import MissingFile
from taskalign.pretrain.card import WeakPretraining, gate_passed, shipped_card, shipped_weights
from taskalign.pretrain.recipe import Recipe, default_recipe, run_recipe
from taskalign.probe import ProbeConfig
from taskalign import io
from taskalign.study.config import StudyConfig


def pretrain_key(encoder_name: str, cfg: StudyConfig) -> str:
    """Hash of everything the start weights depend on (not the downstream training)."""
    payload = {"encoder": encoder_name, "size": cfg.encoder_size, "pretrain": cfg.pretrain.__dict__,
               "shape": cfg.data.shape, "spacing": cfg.data.spacing_mm}
    if cfg.pretrain.source == "shipped":
        card = shipped_card(encoder_name, cfg.encoder_size)
        payload["sha256"] = card["sha256"] if card else None
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:12]


def pretrained_dir(study_dir: Path, encoder_name: str, cfg: StudyConfig) -> Path:
    return Path(study_dir) / "pretrain" / encoder_name / pretrain_key(encoder_name, cfg)


def study_recipe(encoder_name: str, cfg: StudyConfig) -> Recipe:
    """The family's recipe at the study's size and grid; the preset's pretraining fields, where
    set, override it (the smoke preset's few steps)."""
    p = cfg.pretrain
    overrides = {k: v for k, v in (("steps", p.steps), ("batch_size", p.batch_size), ("lr", p.lr),
                                   ("n_cases", p.n_cases)) if v is not None}
    return default_recipe(encoder_name, cfg.encoder_size, shape=tuple(cfg.data.shape),
                          spacing_mm=tuple(cfg.data.spacing_mm), **overrides)


def ensure_pretrained(study_dir: Path, encoder_name: str, cfg: StudyConfig, log=print) -> Path:
    """Weights file of the in-house encoder in the study folder: the shipped foundation weights
    (`pretrain.source="shipped"`, sha256-checked against their card) or the recipe re-run
    (`"fresh"`, probed and gated). Weights that failed the gate stop the study with
    `WeakPretraining` unless `pretrain.allow_weak`."""
    out = pretrained_dir(study_dir, encoder_name, cfg)
    weights, card_path = out / "weights.safetensors", out / "card.json"
    if not (card_path.exists() and weights.exists()):
        if cfg.pretrain.source == "shipped":
            source = shipped_weights(encoder_name, cfg.encoder_size)
            if source is None:
                raise MissingFile(
                    f"no shipped foundation weights for {encoder_name} at size {cfg.encoder_size}; run the recipe "
                    f"in the study with --pretrain fresh, or give a file with --weights {encoder_name}=FILE")
            log(f"{encoder_name}: shipped foundation weights ({source.name}, sha256 verified)")
            io.write_bytes(weights, source.read_bytes())
            io.write_json(card_path, shipped_card(encoder_name, cfg.encoder_size))   # written last
        else:
            recipe = study_recipe(encoder_name, cfg)
            log(f"pretraining {encoder_name} ({recipe.size}) for {recipe.steps} steps on {recipe.n_cases} cases")
            run_recipe(recipe, out, probe_config=ProbeConfig(n_cases=cfg.pretrain.probe_cases, shape=recipe.shape,
                                                             spacing_mm=recipe.spacing_mm), log=log)
    card = io.read_json(card_path)
    if not gate_passed(card) and not cfg.pretrain.allow_weak:
        reason = card.get("probe", {}).get("gate", {}).get("reason", "it was not probed")
        raise WeakPretraining(
            f"{encoder_name}: the in-house weights in {out} failed the foundation gate ({reason}); they are not a "
            f"foundation model. Re-create them with `taskalign pretrain {encoder_name}`, or run anyway with "
            f"--allow-weak-pretraining (the report then says so)")
    return weights


def foundation_status(study_dir: Path, encoder_name: str, cfg: StudyConfig) -> dict:
    """What the report says of an encoder's start weights: source, gate and its reason."""
    if given_weights(encoder_name, cfg) is not None:
        return {"source": "given file", "gate": None, "reason": "published or user weights (not probed here)"}
    path = pretrained_dir(study_dir, encoder_name, cfg) / "card.json"
    card = io.read_json(path) if path.exists() else {}
    gate = card.get("probe", {}).get("gate", {})
    return {"source": cfg.pretrain.source, "gate": gate.get("passed"), "reason": gate.get("reason", "not probed"),
            "sha256": card.get("sha256")}


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
