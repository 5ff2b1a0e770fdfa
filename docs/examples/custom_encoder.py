"""Worked example: bring your own encoder (and its pretraining objective) into the study.

    python docs/examples/custom_encoder.py runs/custom     # smoke-size study with the new encoder

A registered encoder needs: `family` (names its pretraining objective), `spatial_dims`,
`pooled_dim`, `feature_info` (one MapInfo per map), `input_sequences`, `preprocess` and
`forward_features`. The study then builds the same heads, baselines, alignment and report for it.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, MapInfo, register_encoder
from taskalign.pretrain import register_pretrainer


class TinyCNN3D(Encoder):
    """Two strided 3D conv stages; pooled = global mean of the last stage."""

    family = "tiny_cnn"
    spatial_dims = 3

    def __init__(self, input_sequences: tuple[str, ...], width: int = 16) -> None:
        super().__init__()
        self.input_sequences = tuple(input_sequences)
        self.stage1 = nn.Sequential(nn.Conv3d(3, width, 3, stride=(1, 2, 2), padding=1), nn.GELU())
        self.stage2 = nn.Sequential(nn.Conv3d(width, 2 * width, 3, stride=2, padding=1), nn.GELU())
        self.pooled_dim = 2 * width
        self.feature_info = [MapInfo(width, (1, 2, 2)), MapInfo(2 * width, (2, 4, 4))]

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland=None) -> np.ndarray:
        out = np.zeros((3, *image.shape[1:]), np.float32)        # absent sequences stay zero
        for channel, name in zip(image, sequences):
            nz = channel[channel > 0]
            mean, std = (nz.mean(), nz.std() + 1e-6) if nz.size else (0.0, 1.0)
            out[SEQUENCES.index(name)] = (channel - mean) / std
        return out

    def forward_features(self, x: torch.Tensor, slices=None) -> dict:
        m1 = self.stage1(x)                                      # (B, w, D, H/2, W/2)
        m2 = self.stage2(m1)                                     # (B, 2w, D/2, H/4, W/4)
        return {"pooled": m2.mean(dim=(2, 3, 4)), "maps": [m1, m2]}


@register_encoder("tiny_cnn")
def create_tiny_cnn(size: str = "micro", input_sequences=SEQUENCES, **kwargs) -> TinyCNN3D:
    return TinyCNN3D(input_sequences, width={"micro": 16, "tiny": 32, "paper": 64}[size])


@register_pretrainer("tiny_cnn")
def pretrain_denoise(encoder: TinyCNN3D, cases, steps: int, batch_size: int, lr: float, seed: int,
                     progress=None) -> list[float]:
    """Pretraining objective of the example: predict the pooled feature of the clean volume from a
    noisy copy (a toy objective; yours goes here). Trains `encoder` in place, returns the losses."""
    rng = np.random.default_rng(seed)
    volumes = [encoder.preprocess(c.image, SEQUENCES, c.gland) for c in cases]
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = torch.from_numpy(np.stack([volumes[i] for i in rng.integers(len(volumes), size=batch_size)]))
        noisy = x + 0.3 * torch.randn_like(x)
        target = encoder.forward_features(x)["pooled"].detach()
        loss = nn.functional.mse_loss(encoder.forward_features(noisy)["pooled"], target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def main(out: str) -> None:
    from taskalign.study.config import preset
    from taskalign.study.runner import run_study

    cfg = preset("smoke", encoders=("tiny_cnn", "profound_conv"), tasks=("segmentation", "synthesis"))
    print(run_study(cfg, out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/custom")
