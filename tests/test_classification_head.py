"""The classification head (gated attention-MIL over standardised positions) and the slice rule
for case-level tasks: a slice-wise model sees every slice in training, as at test."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from taskalign.encoders import create_encoder
from taskalign.heads import AttentionMILHead, MLPHead, build_head
from taskalign.models import TaskModel
from taskalign.study.config import TrainConfig
from taskalign.tasks.base import Sample, create_task
from taskalign.tasks.metrics import auroc
from taskalign.train.batches import BatchSampler
from taskalign.train.loop import fit


def _features(maps: torch.Tensor) -> dict:
    return {"pooled": maps.mean(dim=(2, 3, 4)), "maps": [maps]}


# ---- (a) the pooling finds a lesion ------------------------------------------------------------

def _lesion_bags(n: int, seed: int, shift: float = 5.0, channels: int = 16, grid=(4, 3, 3)):
    """Bags of Gaussian positions (n, C, D, H, W); in every positive bag ONE position is moved
    by `shift` along a direction fixed for all bags. Labels alternate 0, 1."""
    direction = torch.randn(channels, generator=torch.Generator().manual_seed(99))
    direction = direction / direction.norm()
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(n, channels, *grid, generator=g)
    labels = torch.arange(n) % 2
    for i in torch.nonzero(labels).flatten().tolist():
        d, h, w = (int(torch.randint(s, (1,), generator=g)) for s in grid)
        maps[i, :, d, h, w] += shift * direction
    return maps, labels.float()


class MeanPooledHead(AttentionMILHead):
    """The same head with uniform weights: mean pooling of the same standardised positions."""

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        return torch.full(h.shape[:2], 1.0 / h.shape[1], dtype=h.dtype, device=h.device)


def _train_and_score(head_cls, train, test, steps: int = 100) -> float:
    """Full-batch AdamW on the training bags; test AUROC."""
    torch.manual_seed(0)
    head = head_cls(train[0].shape[1], 1, hidden_dim=16, attention_dim=8, dropout=0.0)
    head.calibrate([_features(train[0])])
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(head(_features(train[0]))[:, 0], train[1])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits = head.eval()(_features(test[0]))[:, 0]
    return auroc(test[1].numpy().astype(int), logits.numpy())


def test_attention_finds_the_one_lesion_position_that_mean_pooling_dilutes():
    train, test = _lesion_bags(128, seed=1), _lesion_bags(256, seed=2)   # 36 positions per bag
    attention = _train_and_score(AttentionMILHead, train, test)
    mean = _train_and_score(MeanPooledHead, train, test)
    assert attention >= 0.9, f"attention-MIL AUROC {attention:.3f}"
    assert attention > mean + 0.1, f"attention-MIL {attention:.3f} vs mean pooling {mean:.3f}"


# ---- (b) the slice rule -------------------------------------------------------------------------

def _volumes(n: int, depth: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(size=(1, depth, 8, 8)).astype(np.float32) for _ in range(n)]
    case_level = [Sample(f"c{i}", x, ("t2w",), np.array([i % 2], np.float32), np.ones(x.shape[1:], bool))
                  for i, x in enumerate(inputs)]
    dense = [Sample(s.case_id, s.input, s.input_sequences, (s.input[0] > 0).astype(np.float32), s.mask)
             for s in case_level]
    return inputs, case_level, dense


def test_sampler_draws_slices_for_dense_targets_only():
    inputs, case_level, dense = _volumes(6)
    whole = BatchSampler(inputs, case_level, batch_size=2, seed=3, slices_per_volume=4, dense=False)
    drawn = BatchSampler(inputs, dense, batch_size=2, seed=3, slices_per_volume=4, dense=True)
    for _ in range(5):
        w, d = whole.next(), drawn.next()
        assert w.slices is None                      # every slice, as `model(x)` at test
        assert d.slices is not None and len(d.slices) == 4 and d.target.shape[2] == 4


class SliceSpy(nn.Module):
    """A slice-wise model that records which slices each call computes (None: all of them)."""

    slice_wise = True

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.seen: list[tuple[bool, tuple[int, ...]]] = []

    def forward(self, x, slices=None):
        chosen = range(x.shape[2]) if slices is None else slices.tolist()
        self.seen.append((self.training, tuple(chosen)))
        x = x if slices is None else x[:, :, slices]
        return self.linear(x.mean(dim=(1, 2, 3, 4))[:, None])


def test_a_slice_wise_model_sees_the_same_slices_in_training_and_at_test():
    inputs, samples, _ = _volumes(8)
    spy = SliceSpy()
    cfg = TrainConfig(steps=6, steps_per_epoch=3, batch_size=2, slices_per_volume=3, warmup_steps=1)
    split = (inputs, samples)
    fit(spy, create_task("classification"), split, split, split, cfg, seed=0,
        param_groups=[{"params": list(spy.parameters()), "lr": 1e-2, "base_lr": 1e-2}])
    train_sets = {s for training, s in spy.seen if training}
    test_sets = {s for training, s in spy.seen if not training}
    assert train_sets == test_sets == {tuple(range(8))}


# ---- (c) standardisation keeps the case-to-case spread -----------------------------------------

def _near_constant_maps(n: int = 32, channels: int = 64, grid=(4, 3, 3)) -> torch.Tensor:
    """Positions = one shared vector + a per-case offset + a little position noise, with
    σ/‖f‖ ≈ 0.016 for the pooled features f (σ: RMS distance of a case to the mean case), as
    ProViCNet micro's pooled features."""
    g = torch.Generator().manual_seed(5)
    shared = torch.randn(channels, generator=g) + 1.0
    per_case = 0.016 * shared.norm() / channels ** 0.5 * torch.randn(n, channels, generator=g)
    maps = (shared + per_case)[:, :, None, None, None] + 0.0005 * torch.randn(n, channels, *grid, generator=g)
    pooled = maps.mean(dim=(2, 3, 4))
    spread = (pooled - pooled.mean(0)).square().sum(1).mean().sqrt() / pooled.norm(dim=1).mean()
    assert 0.012 < float(spread) < 0.02
    return maps


def test_standardised_head_starts_with_logits_that_differ_between_cases():
    maps = _near_constant_maps()
    torch.manual_seed(0)
    head = AttentionMILHead(maps.shape[1], 1).eval()
    torch.manual_seed(0)
    layer_norm_mlp = MLPHead(maps.shape[1], 1).eval()
    with torch.no_grad():
        raw = head(_features(maps)).std()
        head.calibrate([_features(maps[:16]), _features(maps[16:])])
        standardised = head(_features(maps)).std()
        old = layer_norm_mlp(_features(maps)).std()
    assert standardised > 0.1, f"logit std across cases {standardised:.4f}"
    assert standardised > 10 * old and standardised > 10 * raw, (standardised, old, raw)


def test_calibration_is_the_channel_mean_and_std_over_positions_whatever_the_batching():
    maps = torch.randn(6, 5, 2, 3, 3) * torch.arange(1.0, 6.0)[None, :, None, None, None] + 3.0
    one, three = AttentionMILHead(5, 1), AttentionMILHead(5, 1)
    one.calibrate([_features(maps)])
    three.calibrate(_features(maps[i:i + 2]) for i in range(0, 6, 2))
    tokens = maps.permute(0, 2, 3, 4, 1).reshape(-1, 5).double()
    assert torch.allclose(one.feature_mean.double(), tokens.mean(0), atol=1e-5)
    assert torch.allclose(one.feature_std.double(), tokens.std(0), atol=1e-5)
    assert torch.allclose(one.feature_mean, three.feature_mean) and torch.allclose(one.feature_std, three.feature_std)
    assert bool(one.calibrated) and not bool(AttentionMILHead(5, 1).calibrated)
    with pytest.raises(ValueError, match="at least two positions"):
        one.calibrate([])


def test_bad_feature_maps_raise():
    head = AttentionMILHead(8, 1)
    with pytest.raises(ValueError, match="expects"):
        head(_features(torch.randn(2, 4, 2, 3, 3)))
    with pytest.raises(ValueError, match="dropout"):
        AttentionMILHead(8, 1, dropout=1.0)


# ---- (d) the real encoders ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["profound_conv", "provicnet"])
def test_head_on_micro_encoders(name):
    torch.manual_seed(0)
    encoder = create_encoder(name, size="micro")
    head = build_head("classification", encoder, 3, 1)
    assert isinstance(head, AttentionMILHead) and head.in_channels == encoder.feature_info[-1].channels
    model = TaskModel(encoder, head)
    inputs = [np.random.default_rng(i).normal(size=(3, 8, 32, 32)).astype(np.float32) for i in range(3)]
    assert model.calibrate(inputs, batch_size=2) and bool(head.calibrated)
    assert model.training                                  # calibration leaves the mode as it was
    x = torch.from_numpy(np.stack(inputs[:2]))
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 1)
        if model.slice_wise:
            assert model(x, torch.tensor([1, 4])).shape == (2, 1)
    assert {"head.feature_mean", "head.feature_std", "head.calibrated"} <= set(model.state_dict())


def test_models_without_a_calibrating_head_skip_calibration():
    encoder = create_encoder("profound_conv", size="micro")
    model = TaskModel(encoder, build_head("segmentation", encoder, 3, 2, feature_size=4))
    assert model.calibrate([np.zeros((3, 8, 32, 32), np.float32)]) is False
