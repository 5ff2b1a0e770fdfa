"""The two kinds of model the fine-tuning loop trains, behind one interface (DESIGN.md §7).

    model(x, slices=None) -> prediction     x: (B, C, D, H, W), preprocessed
    model.slice_wise                         True: dense predictions cover only `slices`, so the
                                             loop crops dense targets (and bases) to them
    model.preprocess(image, sequences, gland) -> (C, D, H, W) float32 model input
    model.calibrate(train_inputs) -> bool    heads that fix statistics from the start features
    model.parameter_groups(encoder_lr, head_lr) -> torch optimiser groups

`TaskModel` is an encoder with a task head (a VFM fine-tuned, or its architecture from scratch);
`SpecialisedModel` wraps a task's specialised network (`taskalign.baselines`).
Predictions: classification (B, out); dense (B, out, D', H, W) with D' = len(slices) for
slice-wise encoders given `slices`, else D.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from taskalign.encoders.base import Encoder
from taskalign.optim import is_decayed


def _split_decay(params: list[tuple[str, nn.Parameter]], lr: float, name: str,
                 weight_decay: float | None) -> list[dict[str, Any]]:
    """One group, or a decayed group and an undecayed one by the one rule of `taskalign.optim`."""
    params = [(n, p) for n, p in params if p.requires_grad]
    if not params:
        return []
    if weight_decay is None:
        return [{"name": name, "params": [p for _, p in params], "lr": lr}]
    decay = [p for n, p in params if is_decayed(n, p)]
    no_decay = [p for n, p in params if not is_decayed(n, p)]
    groups = [{"name": name, "params": decay, "lr": lr, "weight_decay": weight_decay},
              {"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class TaskModel(nn.Module):
    """An encoder and a task head (`taskalign.heads.build_head`).

    The head sees the encoder's feature dict and the encoder's input (for slice-wise encoders
    given `slices`, only those slices: the full-resolution skip of the dense heads).
    """

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    @property
    def slice_wise(self) -> bool:
        return self.encoder.spatial_dims == 2

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None) -> np.ndarray:
        return self.encoder.preprocess(image, sequences, gland)

    def forward(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C_enc, D, H, W) -> (B, out) or (B, out, D', H, W)."""
        features = self.encoder.forward_features(x, slices)
        if slices is not None and self.slice_wise:
            x = x[:, :, slices]
        return self.head(features, x)

    @torch.no_grad()
    def calibrate(self, inputs: list[np.ndarray], batch_size: int = 2) -> bool:
        """Let the head fix what it takes from training features before fitting (its `calibrate`
        hook, e.g. the classification head's standardisation), from the encoder as it is now (the
        start state) in eval mode, on preprocessed training inputs (C_enc, D, H, W). Deterministic;
        returns False (and runs nothing) when the head has no such hook."""
        hook = getattr(self.head, "calibrate", None)
        if hook is None:
            return False
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        batches = (torch.from_numpy(np.stack(inputs[i:i + batch_size])).float().to(device)
                   for i in range(0, len(inputs), batch_size))
        hook(self.encoder.forward_features(x) for x in batches)   # every slice, as at test
        self.train(was_training)
        return True

    def parameter_groups(self, encoder_lr: float, head_lr: float,
                         weight_decay: float | None = None) -> list[dict[str, Any]]:
        """Optimiser groups named "encoder" and "head" at their learning rates; parameters with
        requires_grad False (a frozen encoder) are left out. With `weight_decay`, each group is
        split by `taskalign.optim.is_decayed` (no decay on biases, norms, gains and tokens)."""
        return (_split_decay(list(self.encoder.named_parameters()), encoder_lr, "encoder", weight_decay)
                + _split_decay(list(self.head.named_parameters()), head_lr, "head", weight_decay))


class SpecialisedModel(nn.Module):
    """A specialised network (`taskalign.baselines.build_specialised`) with the TaskModel interface;
    it always sees whole volumes, so `slices` is ignored and `slice_wise` is False."""

    slice_wise = False

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None) -> np.ndarray:
        return specialised_preprocess(image, sequences, gland)

    def forward(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, D, H, W) -> (B, out) or (B, out, D, H, W)."""
        return self.net(x)

    def parameter_groups(self, encoder_lr: float, head_lr: float,
                         weight_decay: float | None = None) -> list[dict[str, Any]]:
        """One group named "network" at `head_lr`: the whole network is freshly initialised, like a
        head (`encoder_lr` is accepted for a uniform call and unused)."""
        return _split_decay(list(self.net.named_parameters()), head_lr, "network", weight_decay)


def specialised_preprocess(image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None = None,
                           eps: float = 1e-8) -> np.ndarray:
    """nnU-Net's MRI normalisation: (C, D, H, W) in units -> per-channel z-score over the non-zero
    voxels; zero voxels (outside the field of view, absent channels) stay 0. `gland` is unused
    (the signature matches `Encoder.preprocess`)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4 or image.shape[0] != len(sequences):
        raise ValueError(f"image must be (C, D, H, W) with C = len(sequences) = {len(sequences)} "
                         f"({', '.join(sequences)}), got shape {image.shape}")
    out = np.zeros_like(image)
    for c, channel in enumerate(image):
        inside = channel != 0
        if not inside.any():
            continue
        values = channel[inside].astype(np.float64)
        out[c][inside] = (values - values.mean()) / max(values.std(), eps)
    return out
