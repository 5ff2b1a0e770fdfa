"""Labelled-set regimes: nested stratified subsets, one unit per regime, the CLI option, and the
learning-rate sweep's choice rule."""
from __future__ import annotations

import math

import numpy as np
import pytest

from taskalign.cli import build_parser, study_config
from taskalign.errors import InputError
from taskalign.study.config import DataConfig, preset, regimes
from taskalign.study.lr_sweep import choose
from taskalign.study.task_data import nested_order
from taskalign.study.units import plan_units


def test_nested_order_prefixes_are_nested_and_stratified():
    labels = [1] * 12 + [0] * 36
    order = nested_order(labels, seed=3)
    assert sorted(order) == list(range(48))
    for k in (4, 8, 16, 48):
        positives = sum(labels[i] for i in order[:k])
        assert abs(positives - k * 12 / 48) <= 1.0, (k, positives)
    small, large = set(order[:8]), set(order[:16])
    assert small <= large


def test_nested_order_depends_on_the_seed_and_is_reproducible():
    labels = [None] * 20
    assert nested_order(labels, 0) == nested_order(labels, 0)
    assert nested_order(labels, 0) != nested_order(labels, 1)


def test_even_a_tiny_regime_has_both_classes():
    labels = [1] * 5 + [0] * 43
    for seed in range(5):
        first = [labels[i] for i in nested_order(labels, seed)[:8]]
        assert set(first) == {0, 1}


def test_regimes_are_checked_against_the_pool():
    assert regimes(DataConfig(n_train=48, train_cases=(16, 8, 16))) == (8, 16)
    assert regimes(DataConfig(n_train=10)) == (10,)
    with pytest.raises(InputError, match="n_train"):
        regimes(DataConfig(n_train=10, train_cases=(16,)))


def test_quick_is_one_regime_of_standard_on_the_same_cohort():
    quick, standard = preset("quick"), preset("standard")
    assert regimes(quick.data) == (16,) and regimes(standard.data) == (8, 16, 48)
    same = ("n_train", "n_val", "n_test", "data_seed", "shape", "spacing_mm")
    assert all(getattr(quick.data, f) == getattr(standard.data, f) for f in same)
    assert quick.data.n_test >= 96 and quick.data.n_val >= 32
    assert quick.train == standard.train


def test_units_per_regime_and_seed():
    cfg = preset("smoke", seeds=(0, 1))
    _, rest = plan_units(cfg, {"segmentation": (4, 8), "synthesis": (8,)})
    cells = [(u.kind, u.encoder, u.task, u.n_train, u.seed) for u in rest]
    assert ("cell", "provicnet", "segmentation", 4, 1) in cells
    assert ("specialised", None, "synthesis", 8, 0) in cells
    assert not any(t == "synthesis" and n == 4 for _, _, t, n, _ in cells)
    assert len(rest) == (2 + 1) * 2 * (1 + len(cfg.encoders))
    names = {u.name for u in rest}
    assert len(names) == len(rest)


def test_cli_train_cases_sets_the_regimes_and_grows_the_pool():
    args = build_parser().parse_args(["study", "--preset", "quick", "--out", "/tmp/x", "--train-cases", "64,8"])
    cfg = study_config(args)
    assert regimes(cfg.data) == (8, 64) and cfg.data.n_train == 64


@pytest.mark.parametrize("bad", ["8,x", "1,8", ""])
def test_cli_refuses_bad_train_cases(bad, capsys):
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(["study", "--out", "/tmp/x", "--train-cases", bad])
    assert err.value.code == 2
    assert "train-cases" in capsys.readouterr().err


def _table(values: dict[float, list[float]], higher=True):
    return [{"family": "f", "start": "pretrained", "encoder_lr": lr, "task": f"t{i}", "value": v,
             "higher_is_better": higher} for lr, vs in values.items() for i, v in enumerate(vs)]


def test_sweep_chooses_the_best_mean_rank_on_validation():
    chosen = choose(_table({1e-4: [0.5, 0.6, 0.7], 1e-3: [0.6, 0.7, 0.6], 1e-2: [0.1, 0.1, 0.1]}))
    c = chosen[("f", "pretrained")]
    assert c["encoder_lr"] == 1e-3
    assert math.isclose(c["mean_rank"][1e-3], (1 + 1 + 2) / 3)


def test_sweep_ranks_lower_is_better_metrics_the_other_way_and_ties_take_the_slower_rate():
    chosen = choose(_table({1e-4: [2.0, 1.0], 1e-3: [1.0, 2.0]}, higher=False))
    assert chosen[("f", "pretrained")]["encoder_lr"] == 1e-4
    chosen = choose(_table({1e-4: [2.0], 1e-3: [1.0]}, higher=False))
    assert chosen[("f", "pretrained")]["encoder_lr"] == 1e-3


def test_sweep_skips_a_task_with_a_missing_value():
    chosen = choose(_table({1e-4: [0.9, np.nan], 1e-3: [0.5, 0.99]}))
    assert chosen[("f", "pretrained")]["ranks"][1e-3] == [2.0]


def test_an_older_config_json_still_loads():
    """config.json of studies run before labelled-set sizes (with the retired n_pretrain field)."""
    import dataclasses

    from taskalign.study.config import config_from_dict
    old = preset("quick").to_dict()
    old["data"] = {k: v for k, v in old["data"].items() if k != "train_cases"} | {"n_pretrain": 64}
    old["train"].pop("scratch_lr")
    cfg = config_from_dict(old)
    assert cfg.data.train_cases == () and regimes(cfg.data) == (cfg.data.n_train,)
    assert cfg.train.scratch_lr == dataclasses.replace(preset("quick").train).scratch_lr
