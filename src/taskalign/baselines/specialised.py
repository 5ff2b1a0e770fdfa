"""The specialised models of DESIGN.md §2, trained from scratch as the reference of RPG.

classification -> MONAI DenseNet121 (3D) when every axis has >= 32 voxels, else a shallower MONAI
DenseNet whose pooling depth fits the crop; segmentation and image tasks -> MONAI DynUNet
(nnU-Net's architecture) with kernels and strides planned from the volume the nnU-Net way.
Super-resolution's residual output is the task's `base` (pred = model(x) + base, added by the
loop), so every network here is plain.
"""
from __future__ import annotations

import math
from typing import Sequence

from monai.networks.nets import DenseNet, DenseNet121, DynUNet
from torch import nn

DENSENET121_MIN_VOXELS = 32   # its five /2 poolings need >= 32 voxels along every axis
DYNUNET_FILTERS: tuple[int, ...] = (16, 32, 64, 128)
SPECIALISED_KINDS: tuple[str, ...] = ("classification", "segmentation", "image")


def shallow_densenet_blocks(volume_shape: Sequence[int]) -> tuple[int, ...]:
    """DenseNet block_config for a crop under 32 voxels along some axis.

    The stem divides by 4 (stride-2 conv, stride-2 max-pool) and each transition by 2, so the
    number of transitions is the largest that keeps the smallest axis >= 1 voxel (at most 2):
    smallest axis 8-15 -> (3, 3); 16-31 -> (2, 2, 2); under 8 -> (4,).
    """
    smallest = min(volume_shape)
    transitions = 0 if smallest < 8 else min(2, int(math.log2(smallest / 4)))
    return {0: (4,), 1: (3, 3), 2: (2, 2, 2)}[transitions]


def plan_dynunet(volume_shape: Sequence[int], spacing_mm: Sequence[float] | None = None,
                 n_levels: int = len(DYNUNET_FILTERS), min_size: int = 2
                 ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """nnU-Net's planning rule for (kernel_size, strides), one entry per DynUNet level.

    An axis is pooled (stride 2) at a level when its current spacing is less than twice the finest
    current spacing, its size is even and halving keeps it >= `min_size` voxels; its kernel is 3
    once its spacing is within that factor 2, else 1 (thick slices start with (1, 3, 3) kernels and
    (1, 2, 2) strides). Without `spacing_mm` the crop is taken as roughly isotropic in millimetres
    (a gland-centred crop), so the spacing of an axis is proxied by max(volume_shape) / size.
    The first stride is (1, 1, 1); levels that cannot pool repeat stride 1 (DynUNet needs >= 3).
    """
    if len(volume_shape) != 3 or min(volume_shape) < 1:
        raise ValueError(f"volume_shape must be three positive sizes (D, H, W), got {tuple(volume_shape)}")
    size = [int(n) for n in volume_shape]
    spacing = [float(s) for s in spacing_mm] if spacing_mm is not None else [max(size) / n for n in size]
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing_mm must be three positive numbers (z, y, x), got {spacing_mm}")
    fine_enough = [False, False, False]  # kernel 3 stays once an axis's spacing is within factor 2

    def kernel() -> tuple[int, int, int]:
        for a in range(3):
            fine_enough[a] = fine_enough[a] or spacing[a] / min(spacing) < 2
        return tuple(3 if ok else 1 for ok in fine_enough)  # type: ignore[return-value]

    kernels, strides = [kernel()], [(1, 1, 1)]
    for _ in range(max(n_levels, 3) - 1):
        stride = tuple(2 if (spacing[a] / min(spacing) < 2 and size[a] % 2 == 0 and size[a] // 2 >= min_size)
                       else 1 for a in range(3))
        for a in range(3):
            if stride[a] == 2:
                size[a] //= 2
                spacing[a] *= 2
        strides.append(stride)  # type: ignore[arg-type]
        kernels.append(kernel())
    return kernels, strides


def build_specialised(kind: str, in_channels: int, out_channels: int, volume_shape: tuple[int, int, int],
                      spacing_mm: tuple[float, float, float] | None = None,
                      filters: Sequence[int] = DYNUNET_FILTERS) -> nn.Module:
    """The specialised network of a task kind, input (B, in_channels, *volume_shape).

    classification -> (B, out_channels) logits; segmentation / image -> (B, out_channels, D, H, W).
    """
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    if kind == "classification":
        if min(volume_shape) >= DENSENET121_MIN_VOXELS:
            return DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=out_channels)
        return DenseNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, init_features=16,
                        growth_rate=12, block_config=shallow_densenet_blocks(volume_shape))
    if kind in ("segmentation", "image"):
        if len(filters) < 3:
            raise ValueError(f"filters needs one width per DynUNet level (>= 3), got {tuple(filters)}")
        kernels, strides = plan_dynunet(volume_shape, spacing_mm, n_levels=len(filters))
        return DynUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, kernel_size=kernels,
                       strides=strides, upsample_kernel_size=strides[1:], filters=list(filters)[:len(strides)],
                       res_block=True, deep_supervision=False)
    raise ValueError(f"unknown task kind {kind!r}; specialised models exist for {', '.join(SPECIALISED_KINDS)}")
