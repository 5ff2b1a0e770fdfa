"""`taskalign pretrain ENCODER [--size S] --out DIR [--ship]`: run (or resume) the in-house
foundation recipe of an encoder family, probe and gate the result, and write its model card."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from taskalign.errors import InputError


def add_pretrain_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pretrain", help="run the in-house foundation recipe of an encoder (resumable)",
                              description=__doc__)
    p.add_argument("encoder", help="registered encoder name, e.g. profound_conv or provicnet")
    p.add_argument("--size", default="micro", help="size preset (default micro)")
    p.add_argument("--out", type=Path, required=True, help="run folder (created; resumed when it holds a checkpoint)")
    p.add_argument("--steps", type=int, help="override the recipe's steps")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch of volumes")
    p.add_argument("--cases", type=int, help="override the recipe's pretraining cohort size")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0, help="checkpoint interval (default 3)")
    p.add_argument("--no-probe", action="store_true", help="skip the frozen probes and the gate")
    p.add_argument("--ship", action="store_true",
                   help="copy the weights and card into the package (src/taskalign/foundation/) if the gate passed")
    p.set_defaults(func=run_pretrain_command)
    return p


def ship(out: Path, encoder: str, size: str) -> Path:
    """Copy a finished run's weights and card into the package's foundation folder."""
    from taskalign.pretrain.card import FOUNDATION_DIR, write_card
    from taskalign import io

    card = io.read_json(Path(out) / "card.json")
    stem = f"{encoder}-{size}"
    FOUNDATION_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(out) / card["weights"], FOUNDATION_DIR / f"{stem}.safetensors")
    write_card(FOUNDATION_DIR, {**card, "weights": f"{stem}.safetensors"}, stem=stem)
    return FOUNDATION_DIR / f"{stem}.safetensors"


def run_pretrain_command(args) -> int:
    from taskalign.pretrain.recipe import default_recipe, run_recipe
    from taskalign.pretrain.progress import ProgressLine

    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                   ("n_cases", args.cases)) if v is not None}
    for name, value in overrides.items():
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    recipe = default_recipe(args.encoder, args.size, **overrides)
    start = time.perf_counter()
    with ProgressLine(recipe.steps, f"{recipe.encoder} ({recipe.size})") as progress:
        card = run_recipe(recipe, args.out, progress=progress.update, probe=not args.no_probe,
                          checkpoint_every_s=60 * args.checkpoint_minutes, log=progress.log)
    print(f"weights: {(args.out / 'weights.safetensors').resolve()}  sha256 {card['sha256']}")
    print(f"card:    {(args.out / 'card.md').resolve()}")
    gate = card.get("probe", {}).get("gate")
    if gate is not None:
        print(f"gate:    {'passed' if gate['passed'] else 'FAILED'}: {gate['reason']}")
    print(f"finished in {time.perf_counter() - start:.0f} s")
    if args.ship:
        if not (gate and gate["passed"]):
            raise InputError("not shipped: the weights did not pass the foundation gate")
        print(f"shipped: {ship(args.out, recipe.encoder, recipe.size)}")
    return 0
