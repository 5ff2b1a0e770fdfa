"""Batches for the fine-tuning loop: the same draw of volumes, flips and slices for every model
of a task and seed (DESIGN.md §7), because all randomness comes from one seeded generator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taskalign.tasks.base import Sample


@dataclass
class Batch:
    x: torch.Tensor                 # (B, C_model, D, H, W) model input, preprocessed
    target: torch.Tensor            # task target, batch first
    base: torch.Tensor | None       # residual base (image tasks) or None
    slices: torch.Tensor | None     # slice indices drawn (slice-wise models, dense tasks); None: every slice

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: t.to(device) if t is not None else None  # noqa: E731
        return Batch(move(self.x), move(self.target), move(self.base), move(self.slices))


def target_array(sample: Sample) -> np.ndarray:
    """Task target with a channel axis: () -> (1,), (D,H,W) -> (1,D,H,W), (C,D,H,W) unchanged."""
    t = np.asarray(sample.target, dtype=np.float32)
    if t.ndim == 0:
        return t.reshape(1)
    if t.ndim == 3:
        return t[None]
    return t


class BatchSampler:
    """Epoch-wise shuffled volumes, left-right flips and slice draws from one `np.random.Generator`.

    Slices (for slice-wise models, `slices_per_volume` > 0) are drawn for dense targets only,
    which are cropped to them. A case-level target (`dense=False`) describes the whole volume,
    and a lesion fills only some of its slices: there the batch asks for every slice
    (`Batch.slices` None), the set the model sees at test, so the label is true of what it sees.
    """

    def __init__(self, inputs: list[np.ndarray], samples: list[Sample], batch_size: int, seed: int,
                 slices_per_volume: int = 0, dense: bool = True) -> None:
        if len(inputs) == 0:
            raise ValueError("no training cases: the training split is empty")
        self.inputs, self.samples = inputs, samples
        self.targets = [target_array(s) for s in samples]
        self.batch_size = min(batch_size, len(inputs))
        self.dense = dense
        self.slices_per_volume = slices_per_volume if dense else 0   # case-level: every slice
        self.rng = np.random.default_rng(seed)
        # slices come from their own stream, so volumes and flips match across 2D and 3D models
        self.slice_rng = np.random.default_rng([seed, 1])
        self._order: list[int] = []

    def _next_indices(self) -> list[int]:
        out = []
        while len(out) < self.batch_size:
            if not self._order:
                self._order = list(self.rng.permutation(len(self.inputs)))
            out.append(int(self._order.pop()))
        return out

    def next(self) -> Batch:
        idx = self._next_indices()
        flips = self.rng.random(len(idx)) < 0.5          # left-right (x axis) flip per volume
        depth = self.inputs[idx[0]].shape[1]
        slices = None
        if self.slices_per_volume:
            k = min(self.slices_per_volume, depth)
            slices = np.sort(self.slice_rng.choice(depth, size=k, replace=False))
        xs, ts, bs = [], [], []
        for i, flip in zip(idx, flips):
            x, t = self.inputs[i], self.targets[i]
            b = self.samples[i].base
            if flip:
                x = x[..., ::-1]
                if self.dense:
                    t = t[..., ::-1]
                b = b[..., ::-1] if b is not None else None
            xs.append(np.ascontiguousarray(x))
            ts.append(np.ascontiguousarray(t))
            if b is not None:
                bs.append(np.ascontiguousarray(b))
        target = torch.from_numpy(np.stack(ts))
        base = torch.from_numpy(np.stack(bs)).float() if bs else None
        sl = None
        if slices is not None:
            sl = torch.from_numpy(slices).long()
            if self.dense:                                 # dense targets follow the slices drawn
                target = target[:, :, sl]
                base = base[:, :, sl] if base is not None else None
        return Batch(torch.from_numpy(np.stack(xs)).float(), target.float(), base, sl)
