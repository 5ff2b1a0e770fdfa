"""The heads ProViCNet's pretraining puts on its backbone (the published files carry them, so they
live with the encoder); the in-house weights drop them after pretraining.

- `ProjectionHead`: DINO's head (MLP -> L2 norm -> weight-normalised linear to K prototypes, no
  bias). Stage 1 uses it on cls tokens; stage 2 uses another one, named `CL_Head` in published
  files, on patch tokens (paper size: 384 -> 2048 -> 2048 -> 256, then 256 -> 65536), so its keys
  are `mlp.{0,2,4}.*` and `last_layer.weight_g` / `last_layer.weight_v`.
- `SegmentationUpsampler`: the light head of stage 2; three (upsample ×2, conv 3×3, BN, ReLU)
  steps on the patch-token grid, then bilinear resizing to the slice size. Keys
  `segmentation_conv.{1,2,5,6,9}.*` follow the published `head.*`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HeadSizes:
    seg_widths: tuple[int, int]
    cl_out_dim: int
    cl_hidden_dim: int
    cl_bottleneck_dim: int


HEAD_SIZES = {"paper": HeadSizes((128, 64), 65536, 2048, 256),   # the published head and CL_Head
              "tiny": HeadSizes((96, 48), 1024, 512, 128),
              "micro": HeadSizes((64, 32), 256, 256, 64)}


def head_sizes(preset: str) -> HeadSizes:
    """Sizes of the two pretraining heads at an encoder size preset (micro for custom sizes)."""
    return HEAD_SIZES.get(preset, HEAD_SIZES["micro"])


class WeightNormLinear(nn.Module):
    """y = x Wᵀ with W = g · v / ‖v‖ (row-wise), no bias (Salimans & Kingma 2016).

    `weight_g` (out, 1) starts at 1 and, as in DINO's `norm_last_layer`, is frozen when
    `freeze_norm` is set, so every prototype keeps unit norm."""

    def __init__(self, in_features: int, out_features: int, freeze_norm: bool = True) -> None:
        super().__init__()
        direction = nn.Linear(in_features, out_features, bias=False).weight.detach()  # PyTorch's default init
        self.weight_v = nn.Parameter(direction.clone())
        self.weight_g = nn.Parameter(torch.ones(out_features, 1), requires_grad=not freeze_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_g * F.normalize(self.weight_v, dim=1)  # (out, in)
        return F.linear(x, weight)


class ProjectionHead(nn.Module):
    """(..., in_dim) -> (..., out_dim) prototype scores: MLP (GELU) -> L2 norm -> WeightNormLinear."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 num_layers: int = 3) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"ProjectionHead needs num_layers >= 2, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(dims[-1], bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., bottleneck_dim) unit vectors (the input of the prototypes)."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.embed(x))


class SegmentationUpsampler(nn.Module):
    """Patch-token grid (N, E, h, w) -> logits (N, num_classes, H, W)."""

    def __init__(self, embed_dim: int, num_classes: int, widths: tuple[int, int] = (128, 64)) -> None:
        super().__init__()
        w1, w2 = widths
        self.segmentation_conv = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(embed_dim, w1, 3, padding=1), nn.BatchNorm2d(w1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(w1, w2, 3, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(w2, num_classes, 3, padding=1),
        )

    def forward(self, grid: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        logits = self.segmentation_conv(grid)  # (N, classes, 8h, 8w)
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits
