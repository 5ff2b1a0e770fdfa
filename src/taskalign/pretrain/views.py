"""Augmented views of 2.5D slices for DINO: random resized crops (global and local) with flips,
and intensity jitter (gamma, scale, shift, noise); every draw comes from the generator passed in."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from typing import TYPE_CHECKING

from taskalign.pretrain.slices import SliceBatch

if TYPE_CHECKING:
    from taskalign.pretrain.dino import DinoConfig


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_resized_crop(images: torch.Tensor, out_size: int, scale: tuple[float, float],
                        generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, out, out): a crop of `scale` area fraction and aspect ratio 3/4-4/3
    inside each slice, resized bilinearly, mirrored left-right with probability 1/2."""
    n = images.shape[0]
    ratio = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), generator))
    area = _uniform(n, *scale, generator)
    w, h = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # fractions of the side
    cx, cy = _uniform(n, -1, 1, generator) * (1 - w), _uniform(n, -1, 1, generator) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta.to(images), [n, images.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def intensity_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) z-scored slices -> jittered: gamma (p 0.5, γ 0.7-1.4 on the slice's own
    range), scale 0.8-1.2 and shift ±0.2 (p 0.8), Gaussian noise σ ≤ 0.1 (p 0.5); per sample."""
    n = x.shape[0]

    def per_sample(values: torch.Tensor, p: float, neutral: float) -> torch.Tensor:
        keep = torch.rand(n, generator=generator) < p
        return torch.where(keep, values, torch.full_like(values, neutral)).to(x).view(n, 1, 1, 1)

    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    span = (hi - lo).clamp(min=1e-6)
    gamma = per_sample(torch.exp(_uniform(n, math.log(0.7), math.log(1.4), generator)), 0.5, 1.0)
    x = ((x - lo) / span).clamp(0, 1) ** gamma * span + lo
    scale = per_sample(_uniform(n, 0.8, 1.2, generator), 0.8, 1.0)
    x = x * scale + per_sample(_uniform(n, -0.2, 0.2, generator), 0.8, 0.0)
    sigma = per_sample(_uniform(n, 0.0, 0.1, generator), 0.5, 0.0)
    return x + sigma * torch.randn(x.shape, generator=generator).to(x)


def local_view_size(slice_size: int, patch_size: int) -> int:
    """Side of a local view: 7/16 of the global patch grid (DINOv2: 98 px for 224 px), >= 2 patches."""
    return patch_size * max(2, round(slice_size // patch_size * 7 / 16))


def dino_views(batch: SliceBatch, size: int, local_size: int, cfg: "DinoConfig",
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> 2 global views (2N, 3, size, size) and n_local local views (n_local·N, 3, l, l), view-major."""
    def views(n: int, out: int, scale: tuple[float, float]) -> torch.Tensor:
        return torch.cat([intensity_jitter(random_resized_crop(batch.images, out, scale, generator), generator)
                          for _ in range(n)])

    local = views(cfg.n_local_views, local_size, cfg.local_scale) if cfg.n_local_views else None
    return views(2, size, cfg.global_scale), local
