"""The fine-tuning loop: equal batches across models, the NaN guard, curves and best epoch."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from taskalign.study.config import TrainConfig
from taskalign.tasks.base import Sample, Task
from taskalign.train.batches import BatchSampler
from taskalign.train.loop import NonFiniteLossError, fit
from taskalign.optim import lr_at


class MeanTask(Task):
    """Regress a volume's mean intensity: a tiny task to drive the loop."""
    name, kind, metric_name, higher_is_better = "mean", "classification", "neg_mse", True

    def loss(self, pred, target):
        return nn.functional.mse_loss(pred, target)

    def evaluate(self, preds, samples):
        errs = [float((p.reshape(-1)[0] - s.target.reshape(-1)[0]) ** 2) for p, s in zip(preds, samples)]
        return {"neg_mse": -float(np.mean(errs))}, [{"case_id": s.case_id, "se": e} for s, e in zip(samples, errs)]


class MeanModel(nn.Module):
    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.scale = scale

    def forward(self, x, slices=None):
        return self.linear(x.mean(dim=(1, 2, 3, 4))[:, None] * self.scale)


def _split(n, seed):
    rng = np.random.default_rng(seed)
    samples, inputs = [], []
    for i in range(n):
        v = rng.normal(rng.uniform(-1, 1), 0.1, size=(1, 4, 8, 8)).astype(np.float32)
        samples.append(Sample(f"c{i}", v, ("t2w",), np.array([v.mean()], np.float32), np.ones((4, 8, 8), bool)))
        inputs.append(v)
    return inputs, samples


def test_loop_learns_writes_curve_and_keeps_best(tmp_path):
    cfg = TrainConfig(steps=60, steps_per_epoch=10, batch_size=4, warmup_steps=2)
    torch.manual_seed(0)
    model = MeanModel()
    groups = [{"params": list(model.parameters()), "lr": 0.05, "base_lr": 0.05}]
    res = fit(model, MeanTask(), _split(16, 0), _split(8, 1), _split(8, 2), cfg, seed=0, param_groups=groups,
              curve_path=tmp_path / "curve.jsonl")
    curve = [json.loads(line) for line in (tmp_path / "curve.jsonl").read_text().splitlines()]
    assert [p["epoch"] for p in curve] == [1, 2, 3, 4, 5, 6]
    vals = [p["val_metric"] for p in curve]
    assert res.best_epoch == int(np.argmax(vals)) + 1
    assert vals[-1] > vals[0]                       # it learned
    assert res.test_metrics["neg_mse"] > -0.05


def test_non_finite_loss_stops_with_a_clear_error():
    cfg = TrainConfig(steps=5, steps_per_epoch=5, batch_size=2, warmup_steps=1)
    model = MeanModel(scale=float("inf"))
    groups = [{"params": list(model.parameters()), "lr": 0.01, "base_lr": 0.01}]
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        fit(model, MeanTask(), _split(4, 0), _split(2, 1), _split(2, 2), cfg, seed=0, param_groups=groups)


def test_volume_order_and_flips_do_not_depend_on_slice_draws():
    inputs, samples = _split(6, 0)
    dense = [Sample(s.case_id, s.input, s.input_sequences, (s.input[0] > 0).astype(np.float32), s.mask)
             for s in samples]                       # a voxel-wise target: slices are drawn
    plain = BatchSampler(inputs, dense, batch_size=2, seed=3, slices_per_volume=0, dense=True)
    sliced = BatchSampler(inputs, dense, batch_size=2, seed=3, slices_per_volume=2, dense=True)
    for _ in range(7):
        a, b = plain.next(), sliced.next()
        assert torch.equal(a.x, b.x) and b.slices is not None and len(b.slices) == 2
        assert torch.equal(b.target, a.target[:, :, b.slices])


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.05
