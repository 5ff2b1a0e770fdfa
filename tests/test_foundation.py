"""In-house foundation weights: the resumable recipe, the shipped files and their cards, the gate."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from taskalign.pretrain.card import (CardMismatch, WeakPretraining, gate_passed, shipped_card, shipped_weights,
                                     verify_sha256)
from taskalign.pretrain.loop import Checkpointer
from taskalign.pretrain.recipe import default_recipe, recipe_from_dict, sha256_of, train_recipe
from taskalign.probe.evaluate import ProbeConfig, gate

FAMILIES = ("profound_conv", "provicnet")
TINY = dict(steps=10, batch_size=2, n_cases=6, shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))


@pytest.mark.parametrize("encoder,kill_at", [("profound_conv", 4), ("provicnet", 5), ("provicnet", 7),
                                             ("provicnet", 8)])
def test_a_killed_pretraining_resumes_to_the_same_weights(tmp_path, encoder, kill_at):
    """provicnet's 10 steps are 7 DINO + 3 patch contrast: killed inside stage 1, at its end, in stage 2."""
    recipe = default_recipe(encoder, "micro", **TINY)
    whole, losses = train_recipe(recipe)
    ckpt = Checkpointer(tmp_path / "checkpoint.pt", every_s=0.0)
    _, first = train_recipe(recipe, ckpt, stop_after=kill_at)          # the "kill": nothing after step kill_at
    assert first == losses[:kill_at] and ckpt.path.exists()
    resumed, again = train_recipe(recipe, Checkpointer(ckpt.path, every_s=0.0))
    assert again == losses
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_hold_no_pickled_code(tmp_path):
    ckpt = Checkpointer(tmp_path / "c.pt", every_s=0.0)
    train_recipe(default_recipe("profound_conv", "micro", **TINY), ckpt, stop_after=2)
    state = torch.load(ckpt.path, weights_only=True)   # refuses anything but tensors and plain values
    assert state["step"] == 2 and len(state["losses"]) == 2


@pytest.mark.parametrize("encoder", FAMILIES)
def test_shipped_weights_match_their_card_and_passed_the_gate(encoder):
    card = shipped_card(encoder, "micro")
    assert card is not None, f"no shipped foundation weights for {encoder}"
    path = shipped_weights(encoder, "micro")
    assert sha256_of(path) == card["sha256"]
    assert gate_passed(card), card["probe"]["gate"]["reason"]
    assert len(card["loss"]) == card["recipe"]["steps"] == card["steps"]


@pytest.mark.parametrize("encoder", FAMILIES)
def test_the_recipe_reproduces_the_cards_first_losses_to_the_last_digit(encoder):
    card = shipped_card(encoder, "micro")
    recipe = recipe_from_dict(card["recipe"])
    _, losses = train_recipe(recipe, stop_after=3)
    assert losses == card["loss"][:3]


def test_a_card_whose_sha256_does_not_match_is_refused(tmp_path, monkeypatch):
    import taskalign.pretrain.card as card_module

    weights = tmp_path / "profound_conv-micro.safetensors"
    weights.write_bytes(b"not the weights the card describes")
    (tmp_path / "profound_conv-micro.json").write_text(json.dumps({"weights": weights.name, "sha256": "0" * 64}))
    monkeypatch.setattr(card_module, "FOUNDATION_DIR", tmp_path)
    with pytest.raises(CardMismatch, match="does not match its model card"):
        shipped_weights("profound_conv", "micro")
    with pytest.raises(CardMismatch):
        verify_sha256(weights, "f" * 64)


def _probe(name, random, trained, lo, informative=True):
    return {"name": name, "random": random, "pretrained": trained, "diff_ci": [lo, lo + 0.1],
            "informative": informative, "won": informative and trained - random >= 0.05 and lo > 0}


def test_gate_rule():
    cfg = ProbeConfig()
    healthy = {"pooled": {"spread": 0.3, "effective_rank": 10.0}}
    wins = [_probe("a", 0.5, 0.7, 0.05), _probe("b", 0.5, 0.6, 0.01), _probe("c", 0.5, 0.5, -0.1)]
    assert gate(wins, healthy, cfg)["passed"]
    assert not gate(wins[1:], healthy, cfg)["passed"]                       # 1 of 2 is not more than half
    collapsed = {"pooled": {"spread": 0.01, "effective_rank": 1.0}}
    verdict = gate(wins, collapsed, cfg)
    assert not verdict["passed"] and "collapsed" in verdict["reason"]
    uninformative = [_probe("z", 0.95, 0.99, 0.01, informative=False)]
    assert not gate(uninformative, healthy, cfg)["passed"]                  # nothing informative won


@pytest.mark.slow
def test_the_gate_refuses_random_weights():
    """Another random initialisation probed against the reference one is no foundation model."""
    from taskalign.encoders.base import create_encoder
    from taskalign.probe import probe_encoder, seeded_random

    build = lambda s: create_encoder("profound_conv", size="micro", input_sequences=s)  # noqa: E731
    result = probe_encoder(seeded_random(build, 0), seeded_random(build, 1), ProbeConfig(n_cases=48, bootstrap=100))
    assert not result["gate"]["passed"]
    assert not any(p["won"] for p in result["probes"])


def test_a_study_on_weights_that_failed_the_gate_stops(tmp_path):
    from taskalign.study.config import preset
    from taskalign.study.pretrain_stage import ensure_pretrained

    cfg = preset("smoke")
    strict = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, allow_weak=False))
    with pytest.raises(WeakPretraining, match="failed the foundation gate.*--allow-weak-pretraining"):
        ensure_pretrained(tmp_path, "profound_conv", strict, log=lambda m: None)
    assert ensure_pretrained(tmp_path, "profound_conv", cfg, log=lambda m: None).exists()   # smoke allows it


def test_fresh_pretraining_in_a_study_follows_the_recipe(tmp_path):
    from taskalign.study.config import preset
    from taskalign.study.pretrain_stage import study_recipe

    cfg = preset("smoke")
    recipe = study_recipe("provicnet", cfg)
    assert (recipe.steps, recipe.batch_size, recipe.n_cases) == (12, 2, 12)
    assert recipe.shape == tuple(cfg.data.shape) and dict(recipe.options)["stage1_fraction"] == 0.3
    quick = study_recipe("provicnet", preset("quick"))
    shipped = shipped_card("provicnet", "micro")
    assert shipped is None or recipe_from_dict(shipped["recipe"]) == quick   # --pretrain fresh re-makes the file
    assert np.isfinite(quick.lr)


def test_one_weight_decay_rule_spares_tokens_norms_and_gains():
    from taskalign.encoders.base import create_encoder
    from taskalign.optim import decay_groups, is_decayed

    vit = create_encoder("provicnet", size="micro")
    names = {n for n, p in vit.named_parameters() if not is_decayed(n, p)}
    assert {"backbone.cls_token", "backbone.pos_embed", "backbone.register_tokens"} <= names
    assert any(n.endswith("ls1.gamma") for n in names) and any("norm" in n and n.endswith("weight") for n in names)
    conv = create_encoder("profound_conv", size="micro")
    assert not any(is_decayed(n, p) for n, p in conv.named_parameters() if ".grn." in n)
    groups = decay_groups(conv, 0.05, lr_scale=0.3)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0] and all(g["lr_scale"] == 0.3 for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(conv.parameters()))
