"""Each source's start weights, `sources/<encoder>/<source>/weights.safetensors` + `card.json`
(written last: a source with a card is finished and never remade).

- `ssl-<p>`: the family's recipe (`pretrain.recipe`) for p % of the budget's steps, unprobed.
- `sup-<task>`: the encoder with the task's head trained from random initialisation on the
  task's samples of `supervised_cases` pretraining-cohort phantom cases (the recipe's cohort:
  other patients and scanners than the downstream cases), for the whole budget at the recipe's
  batch size, with the study's training loop and scratch learning rates; the encoder is kept,
  the head dropped.
- `shipped`: the packaged in-house weights, copied (sha256 verified) so that the reference
  features the alignment stage caches beside a source's weights never land in the package.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from taskalign import io
from taskalign.experiments.transfer_matrix.config import MatrixConfig
from taskalign.pretrain.recipe import Recipe, default_recipe, run_recipe

SUPERVISED_HOLDOUT = 8   # pretraining-cohort cases for the supervised run's validation (and its test)


def source_dir(matrix_dir: Path, encoder: str, source: str) -> Path:
    return Path(matrix_dir) / "sources" / encoder / source


def source_weights(matrix_dir: Path, encoder: str, source: str) -> Path | None:
    """The start weights of a source (None for `none`: random initialisation)."""
    return None if source == "none" else source_dir(matrix_dir, encoder, source) / "weights.safetensors"


def source_done(matrix_dir: Path, encoder: str, source: str) -> bool:
    folder = source_dir(matrix_dir, encoder, source)
    return source == "none" or ((folder / "card.json").exists() and (folder / "weights.safetensors").exists())


def budget_recipe(mcfg: MatrixConfig, encoder: str, fraction: float = 1.0) -> Recipe:
    """The family's recipe on the matrix's grid, cut to `fraction` of the budget's steps."""
    study = mcfg.study()
    shipped = default_recipe(encoder, study.encoder_size, shape=tuple(study.data.shape),
                             spacing_mm=tuple(study.data.spacing_mm), threads=study.train.threads)
    steps = max(1, round(mcfg.budget_fraction * shipped.steps * fraction))
    return dataclasses.replace(shipped, steps=steps)


def make_source(matrix_dir: Path, mcfg: MatrixConfig, encoder: str, source: str, log=print) -> Path | None:
    """Make (or find) a source's weights; returns their path (None for `none`)."""
    out = source_dir(matrix_dir, encoder, source)
    if source_done(matrix_dir, encoder, source):
        return source_weights(matrix_dir, encoder, source)
    if source == "shipped":
        _copy_shipped(out, encoder, mcfg.study().encoder_size)
    elif source.startswith("ssl-"):
        recipe = budget_recipe(mcfg, encoder, int(source[len("ssl-"):]) / 100.0)
        log(f"{encoder} {source}: self-supervised recipe, {recipe.steps} steps of {recipe.batch_size}")
        run_recipe(recipe, out, probe=False, log=log)
    elif source.startswith("sup-"):
        _supervised(out, mcfg, encoder, source[len("sup-"):], log)
    else:
        raise ValueError(f"unknown source {source!r}")
    return source_weights(matrix_dir, encoder, source)


def _copy_shipped(out: Path, encoder: str, size: str) -> None:
    from taskalign.errors import MissingFile
    from taskalign.pretrain.card import shipped_card, shipped_weights

    path = shipped_weights(encoder, size)
    if path is None:
        raise MissingFile(f"no shipped weights for {encoder} at size {size}; leave the source out (shipped=False)")
    io.write_bytes(out / "weights.safetensors", path.read_bytes())
    io.write_json(out / "card.json", {**shipped_card(encoder, size), "source": "shipped"})


def _supervised(out: Path, mcfg: MatrixConfig, encoder: str, task_name: str, log) -> None:
    from taskalign.pretrain.cohort import PhantomCohort
    from taskalign.study.cell import build_vfm, derive_seed, prepared_splits
    from taskalign.study.cohort import Cohort
    from taskalign.study.task_data import task_data
    from taskalign.tasks.base import create_task
    from taskalign.train.loop import fit

    cfg, recipe = mcfg.study(), budget_recipe(mcfg, encoder)
    n = mcfg.supervised_cases
    cases = list(PhantomCohort(n + 2 * SUPERVISED_HOLDOUT, recipe.cohort_seed, "pretrain", recipe.shape,
                               recipe.spacing_mm))
    cohort = Cohort(train=cases[:n], val=cases[n:n + SUPERVISED_HOLDOUT], test=cases[n + SUPERVISED_HOLDOUT:],
                    reference=[])
    data, reason = task_data(create_task(task_name), cohort, recipe.cohort_seed)
    if data is None:
        raise ValueError(f"supervised source {task_name}: {reason}")
    seed = derive_seed("transfer-matrix", encoder, "sup", task_name)
    model = build_vfm(encoder, cfg, data, None, seed)
    enc_lr, head_lr = cfg.train.lr_for(model.encoder.family or encoder, pretrained=False)
    groups = model.parameter_groups(enc_lr, head_lr, cfg.train.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    train_cfg = dataclasses.replace(cfg.train, steps=recipe.steps, steps_per_epoch=recipe.steps,
                                    batch_size=recipe.batch_size, warmup_steps=max(1, recipe.steps // 10))
    log(f"{encoder} sup-{task_name}: supervised on {n} pretraining cases, {recipe.steps} steps of {recipe.batch_size}")
    train, val, test = prepared_splits(model.encoder.preprocess, data)
    model.calibrate(train[0])
    result = fit(model, data.task, train, val, test, train_cfg, seed, groups, curve_path=out / "curve.jsonl")
    io.save_weights(out / "weights.safetensors", model.encoder.state_dict())
    io.write_json(out / "card.json", {   # last: the completion record
        "encoder": encoder, "source": f"sup-{task_name}", "objective": f"supervised {task_name} ({data.task.metric_name})",
        "cohort": {"kind": "pretrain", "seed": recipe.cohort_seed, "train": n, "val": SUPERVISED_HOLDOUT},
        "steps": recipe.steps, "batch_size": recipe.batch_size, "lr": {"encoder": enc_lr, "head": head_lr},
        "holdout_metrics": result.test_metrics, "seconds": result.seconds})
