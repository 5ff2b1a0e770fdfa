"""UNETR-style dense decoder over an encoder's feature maps (DESIGN.md §3, "Heads").

The decoder sees only `encoder.feature_info` (channels and strides) and the raw input `x`; it never
reaches inside the encoder. It works in three steps:

1. `plan_levels` gives every map a decoder level (a stride). Maps of a pyramid keep their own
   stride. A run of maps that share one stride (a ViT's token maps) becomes a pyramid the UNETR
   way: the deepest map of the run stays, each shallower one is up-sampled one step further
   (the map at index i of k+1 by 2^(k−i) for a stride-2^n run), never finer than the map before
   the run. Level 0 is always full resolution, where `x` enters as UNETR's first encoder block.
2. Each map is projected to its level's width (transposed convolutions for the up-sampling steps,
   a residual conv block after each); maps that land on one level are summed.
3. A U-Net path climbs from the deepest level to level 0: transposed convolution with a kernel
   equal to the stride ratio of the two levels (anisotropic where the strides are), concatenation
   with the level's skip, residual conv block (MONAI `UnetrUpBlock`).

Slice-wise encoders (`spatial_dims == 2`) get the same decoder in 2D: depth is folded into the
batch and unfolded at the end, so every slice is decoded on its own.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetrUpBlock
from monai.networks.blocks.dynunet_block import get_conv_layer
from torch import nn

from taskalign.encoders.base import MapInfo

Stride = tuple[int, ...]


def _ladder(stride: int, floor: int) -> list[int]:
    """Strides from `stride` down to `floor`, one prime factor at a time (smallest first):
    (8, 1) -> [8, 4, 2, 1]; (14, 1) -> [14, 7, 1]; (16, 8) -> [16, 8]."""
    steps = [stride]
    while steps[-1] > floor:
        rest = steps[-1] // floor
        factor = next(p for p in range(2, rest + 1) if rest % p == 0)
        steps.append(steps[-1] // factor)
    return steps


def _check_strides(strides: Sequence[Stride]) -> None:
    if not strides:
        raise ValueError("feature_info is empty: a dense head needs at least one feature map")
    previous = tuple(1 for _ in strides[0])
    for i, stride in enumerate(strides):
        if len(stride) != len(previous) or any(s < 1 for s in stride):
            raise ValueError(f"feature_info[{i}].stride {stride}: expected {len(previous)} positive integers")
        if any(s % p for s, p in zip(stride, previous)):
            raise ValueError(
                f"feature_info[{i}].stride {stride} is not a multiple of the stride before it {previous}; "
                "maps must be ordered shallow to deep with strides that divide one another")
        previous = stride


def plan_levels(strides: Sequence[Stride]) -> tuple[list[Stride], list[int]]:
    """Decoder levels and the level of each map.

    strides: one stride per map, shallow to deep, each a multiple of the one before.
    Returns (levels, map_level): `levels` finest first, levels[0] the all-ones stride (the full
    resolution level of `x`); `map_level[i]` the index in `levels` that map i is projected to.
    Example: four ViT maps at (1, 8, 8) -> levels (1,1,1), (1,2,2), (1,4,4), (1,8,8), maps 0..3
    on levels 0..3; ConvNeXt maps at (2,4,4), (4,8,8), (8,16,16), (8,16,16) -> map 2 is lifted to
    (4,8,8) and summed with map 1.
    """
    _check_strides(strides)
    ones = tuple(1 for _ in strides[0])
    targets: list[Stride] = []
    for i, stride in enumerate(strides):
        start = i
        while start > 0 and strides[start - 1] == stride:
            start -= 1
        later = 0
        while i + later + 1 < len(strides) and strides[i + later + 1] == stride:
            later += 1
        floor = strides[start - 1] if start > 0 else ones
        ladders = [_ladder(s, f) for s, f in zip(stride, floor)]
        targets.append(tuple(ladder[min(later, len(ladder) - 1)] for ladder in ladders))
    levels = sorted(set(targets) | {ones}, key=lambda s: (sum(s), s))
    return levels, [levels.index(t) for t in targets]


def _ratio(coarse: Stride, fine: Stride) -> Stride:
    return tuple(c // f for c, f in zip(coarse, fine))


def match_size(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop or zero-pad the spatial axes of `t` (N, C, *spatial) at their far end to `size`;
    a no-op when they agree (strided maps of sizes that the stride does not divide)."""
    if tuple(t.shape[2:]) == tuple(size):
        return t
    t = t[(slice(None), slice(None)) + tuple(slice(0, n) for n in size)]
    pad: list[int] = []
    for have, want in zip(reversed(t.shape[2:]), reversed(list(size))):
        pad += [0, want - have]
    return F.pad(t, pad)


class _Projection(nn.Sequential):
    """A map at its own stride -> `width` channels at its level: a residual conv block when the
    strides agree, else one (transposed conv, residual block) step per prime factor of the ratio
    (UNETR's `UnetrPrUpBlock`, with steps that may differ per axis)."""

    def __init__(self, spatial_dims: int, in_channels: int, width: int, ratio: Stride, norm_name: str | tuple) -> None:
        ladders = [_ladder(r, 1) for r in ratio]
        n_steps = max(len(ladder) - 1 for ladder in ladders)
        if n_steps == 0:
            super().__init__(UnetResBlock(spatial_dims, in_channels, width, 3, 1, norm_name))
            return
        layers: list[nn.Module] = []
        for k in range(n_steps):
            kernel = tuple(ld[k] // ld[k + 1] if k + 1 < len(ld) else 1 for ld in ladders)
            layers.append(get_conv_layer(spatial_dims, in_channels if k == 0 else width, width,
                                         kernel_size=kernel, stride=kernel, conv_only=True, is_transposed=True))
            layers.append(UnetResBlock(spatial_dims, width, width, 3, 1, norm_name))
        super().__init__(*layers)


class UNETRHead(nn.Module):
    """Dense head: `forward(features, x) -> (B, out_channels, D, H, W)` at the resolution of `x`.

    feature_info: the encoder's maps (channels, (D, H, W) stride), shallow to deep.
    spatial_dims: 3 for volumetric encoders, 2 for slice-wise ones (D stride must be 1).
    in_channels: channels of `x`, the encoder's own input (full-resolution skip).
    feature_size: width of level 0; level l has feature_size * 2**l channels.
    norm_name: MONAI norm, e.g. "instance" (UNETR's; in training every map needs more than one
        voxel per slice or volume) or ("group", {"num_groups": 4}).
    """

    def __init__(self, feature_info: Sequence[MapInfo], spatial_dims: int, in_channels: int, out_channels: int,
                 feature_size: int = 16, norm_name: str | tuple = "instance") -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 (slice-wise) or 3 (volumetric), got {spatial_dims}")
        if spatial_dims == 2 and any(info.stride[0] != 1 for info in feature_info):
            bad = [info.stride for info in feature_info]
            raise ValueError(f"slice-wise encoder maps must keep every slice (D stride 1); feature_info strides are {bad}")
        if feature_size < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"feature_size, in_channels and out_channels must be >= 1, "
                             f"got {feature_size}, {in_channels}, {out_channels}")
        self.spatial_dims = spatial_dims
        self.channels = [info.channels for info in feature_info]
        strides = [tuple(info.stride[3 - spatial_dims:]) for info in feature_info]
        self.levels, self.map_level = plan_levels(strides)
        widths = [feature_size * 2 ** level for level in range(len(self.levels))]
        self.input_block = UnetResBlock(spatial_dims, in_channels, widths[0], 3, 1, norm_name)
        self.projections = nn.ModuleList(
            _Projection(spatial_dims, c, widths[lvl], _ratio(s, self.levels[lvl]), norm_name)
            for c, s, lvl in zip(self.channels, strides, self.map_level))
        self.up_blocks = nn.ModuleList(
            UnetrUpBlock(spatial_dims, widths[lvl + 1], widths[lvl], kernel_size=3,
                         upsample_kernel_size=_ratio(self.levels[lvl + 1], self.levels[lvl]),
                         norm_name=norm_name, res_block=True)
            for lvl in range(len(self.levels) - 1))
        self.out_block = UnetOutBlock(spatial_dims, widths[0], out_channels)

    def forward(self, features: dict, x: torch.Tensor) -> torch.Tensor:
        """features["maps"]: list of (B, C_i, D_i, H_i, W_i); x: (B, C_in, D, H, W) -> (B, out, D, H, W)."""
        maps = list(features["maps"])
        if [m.shape[1] for m in maps] != self.channels:
            raise ValueError(f"feature maps have channels {[m.shape[1] for m in maps]}, "
                             f"the head was built for {self.channels} (feature_info)")
        depth = x.shape[2]
        if self.spatial_dims == 2:  # every slice on its own: (B, C, D, H, W) -> (B·D, C, H, W)
            x = rearrange(x, "b c d h w -> (b d) c h w")
            maps = [rearrange(m, "b c d h w -> (b d) c h w") for m in maps]
        out = self._decode(maps, x)
        if self.spatial_dims == 2:
            out = rearrange(out, "(b d) c h w -> b c d h w", d=depth)
        return out

    def _decode(self, maps: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        level_sizes = [tuple(-(-n // s) for n, s in zip(size, level)) for level in self.levels]
        skips: list[torch.Tensor | None] = [None] * len(self.levels)
        skips[0] = self.input_block(x)
        for m, projection, lvl in zip(maps, self.projections, self.map_level):
            y = match_size(projection(m), level_sizes[lvl])
            skips[lvl] = y if skips[lvl] is None else skips[lvl] + y
        h = skips[-1]
        for lvl in reversed(range(len(self.up_blocks))):  # deepest -> full resolution
            up = self.up_blocks[lvl]
            h = match_size(up.transp_conv(h), level_sizes[lvl])
            h = up.conv_block(torch.cat([h, skips[lvl]], dim=1))
        return self.out_block(h)
