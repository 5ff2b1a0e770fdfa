"""The in-house foundation-model recipe of each family (`taskalign pretrain`): the family's own
objective on a large phantom pretraining cohort, for a budget far beyond any fine-tuning run,
checkpointed every few minutes and resumable after a kill, then probed against its random
initialisation and gated (`taskalign.probe`), and written with its model card.

The pretraining cohort is the phantom's `pretrain` cohort (its own scanners, 1.5 T and a third
3 T system, unlike the downstream cohort's) at `cohort_seed`: no downstream, reference or probe
case is ever among it (those are the `downstream` cohort, and the `probe` cohort).

    out/checkpoint.pt          the loop's state (deleted when the run is finished)
    out/weights.safetensors    the encoder's weights (no heads)
    out/card.json, card.md     recipe, machine, wall time, loss curve, probe table, gate, sha256
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, create_encoder
from taskalign.errors import InputError
from taskalign.pretrain.cohort import PhantomCohort
from taskalign.pretrain.loop import Checkpointer
from taskalign.pretrain.registry import create_pretrainer


@dataclass(frozen=True)
class Recipe:
    encoder: str
    size: str = "micro"
    steps: int = 6000
    batch_size: int = 8
    lr: float = 1.5e-3
    n_cases: int = 1024
    cohort_seed: int = 1000
    shape: tuple[int, int, int] = (16, 48, 48)
    spacing_mm: tuple[float, float, float] = (3.0, 1.5, 1.5)
    seed: int = 0
    threads: int = 1                  # pinned: the loss curve is reproducible to the last digit at it
    options: tuple[tuple[str, float], ...] = ()   # family keyword arguments, e.g. stage1_fraction

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=list).encode()).hexdigest()[:12]


RECIPES: dict[tuple[str, str], Recipe] = {
    ("profound_conv", "micro"): Recipe("profound_conv", "micro", steps=20000, batch_size=8, lr=1.5e-3),
    ("provicnet", "micro"): Recipe("provicnet", "micro", steps=6000, batch_size=8, lr=1e-3, threads=2,
                                   options=(("stage1_fraction", 0.3), ("backbone_lr_scale", 0.3))),
}


def default_recipe(encoder: str, size: str = "micro", **overrides) -> Recipe:
    """The shipped recipe of (encoder, size), or the family's defaults for another size."""
    base = RECIPES.get((encoder, size), Recipe(encoder, size))
    return dataclasses.replace(base, **overrides)


def recipe_from_dict(d: dict) -> Recipe:
    d = dict(d)
    d["shape"], d["spacing_mm"] = tuple(d["shape"]), tuple(d["spacing_mm"])
    d["options"] = tuple(tuple(o) for o in d.get("options", ()))
    return Recipe(**d)


def initial_encoder(recipe: Recipe) -> Encoder:
    """The recipe's encoder at its random initialisation (torch seed `recipe.seed`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        return create_encoder(recipe.encoder, size=recipe.size, input_sequences=SEQUENCES)


def pretrain_cohort(recipe: Recipe) -> PhantomCohort:
    return PhantomCohort(recipe.n_cases, recipe.cohort_seed, "pretrain", recipe.shape, recipe.spacing_mm)


def train_recipe(recipe: Recipe, checkpoint: Checkpointer | None = None,
                 progress: Callable[[int, float], None] | None = None, stop_after: int | None = None
                 ) -> tuple[Encoder, list[float]]:
    """Run the recipe (resuming from `checkpoint` when it holds a state); with `stop_after`, only
    its first steps. Returns the trained encoder and the loss per step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        encoder = initial_encoder(recipe)
        pretrain = create_pretrainer(encoder.family or recipe.encoder)
        optional = {"progress": progress, "checkpoint": checkpoint, "stop_after": stop_after, **dict(recipe.options)}
        losses = pretrain(encoder, pretrain_cohort(recipe), steps=recipe.steps, batch_size=recipe.batch_size,
                          lr=recipe.lr, seed=recipe.seed, **accepted(pretrain, optional))
    finally:
        torch.set_num_threads(threads)
    return encoder, losses


def accepted(fn: Callable, optional: dict) -> dict:
    """The `optional` keyword arguments `fn` takes: a user's objective registered with the plain
    signature (encoder, cases, steps, batch_size, lr, seed) runs too, without resume or progress.
    A recipe option the objective does not take is an error, never silently dropped."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return optional
    hooks = ("progress", "checkpoint", "stop_after")
    unknown = [k for k in optional if k not in params and k not in hooks]
    if unknown:
        raise InputError(f"the pretraining objective {fn.__name__} takes no option(s) {unknown}")
    return {k: v for k, v in optional.items() if k in params}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "cpus": os.cpu_count()}


def run_recipe(recipe: Recipe, out: Path, progress=None, checkpoint_every_s: float = 180.0,
               probe_config=None, probe: bool = True, log=print) -> dict:
    """Train (or resume) `recipe` into `out`, probe and gate the result, write weights and card."""
    from taskalign.pretrain.card import write_card
    from taskalign import io

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "recipe.json", asdict(recipe))
    checkpoint = Checkpointer(out / "checkpoint.pt", checkpoint_every_s)
    resumed = checkpoint.path.exists()
    start = time.perf_counter()
    encoder, losses = train_recipe(recipe, checkpoint, progress)
    seconds = time.perf_counter() - start
    weights = out / "weights.safetensors"
    io.save_weights(weights, encoder.state_dict())
    card = {"encoder": recipe.encoder, "size": recipe.size, "recipe": asdict(recipe), "key": recipe.key(),
            "objective": _objective_name(recipe.encoder), "machine": machine(), "threads": recipe.threads,
            "wall_seconds_this_run": seconds, "resumed": resumed, "steps": len(losses), "loss": losses,
            "weights": weights.name, "sha256": sha256_of(weights)}
    if probe:
        card["probe"] = probe_weights(recipe, weights, probe_config, log)
    write_card(out, card)
    checkpoint.path.unlink(missing_ok=True)
    return card


def probe_weights(recipe: Recipe, weights: Path, cfg=None, log=print) -> dict:
    """The frozen probes of `weights` against the recipe's random initialisation."""
    from taskalign.encoders.weights import load_file_into
    from taskalign.probe import ProbeConfig, probe_encoder, seeded_random

    def trained(sequences: tuple[str, ...]) -> Encoder:
        encoder = create_encoder(recipe.encoder, size=recipe.size, input_sequences=sequences)
        load_file_into(encoder, weights, recipe.encoder)
        return encoder

    random = seeded_random(lambda s: create_encoder(recipe.encoder, size=recipe.size, input_sequences=s), recipe.seed)
    # the random state compared against is the recipe's own initialisation (torch seed recipe.seed)
    cfg = cfg or ProbeConfig(shape=recipe.shape, spacing_mm=recipe.spacing_mm, init_seed=recipe.seed)
    return probe_encoder(random, trained, cfg, log=log)


def _objective_name(encoder: str) -> str:
    return {"profound_conv": "FCMAE (masked reconstruction)", "profound_vit": "MAE (masked reconstruction)",
            "provicnet": "DINO self-distillation, then patch contrast with lesion masks"}.get(encoder, encoder)
