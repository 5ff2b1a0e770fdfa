"""3D MAE ViT: the `profound_vit` encoder family (ProFound's transformer backbone).

Paper size: ViT-Base (embed 768, depth 12, heads 12, MLP ratio 4, no LayerScale) on volumes of
3 × 64 × 256 × 256 (T2w, DWI, ADC), cut into 16 × 32 × 32 patches by a Conv3d (kernel = stride):
a 4 × 8 × 8 grid of 256 patch tokens after a cls token. Positions are fixed 3D sine-cosine
embeddings (a third of the width per axis, D, H, W), stored as the buffer `pos_embed`
(1, 1 + 256, 768) as MAE files store it; for another grid they are recomputed, not interpolated.

Names follow MAE checkpoints key for key: `cls_token`, `pos_embed`, `patch_embed.proj.*`,
`blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.*`, `norm.*`.
Features: `maps` are the patch tokens of four blocks through the final norm, as (B, E, gd, gh, gw)
at the patch stride; `pooled` is the mean of the final normed patch tokens (MAE's global pool).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, MapInfo, register_encoder
from taskalign.encoders.convnextv2 import zscore_nonzero_channels
from taskalign.encoders.dinov2_vit import Attention, Mlp

Size3 = tuple[int, int, int]


@dataclass(frozen=True)
class ViT3DConfig:
    patch_size: Size3 = (16, 32, 32)
    img_size: Size3 = (64, 256, 256)   # the grid `pos_embed` is stored for
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    map_blocks: tuple[int, ...] = (3, 6, 9, 12)  # 1-based blocks whose outputs become `maps`

    def __post_init__(self) -> None:
        if self.embed_dim % 6:
            raise ValueError(f"profound_vit: embed_dim must be a multiple of 6 (3D sin-cos), got {self.embed_dim}")
        if any(n % p for n, p in zip(self.img_size, self.patch_size)):
            raise ValueError(f"profound_vit: img_size {self.img_size} must be a multiple of patch_size {self.patch_size}")
        if len(self.map_blocks) != 4 or not all(1 <= b <= self.depth for b in self.map_blocks):
            raise ValueError(f"profound_vit: map_blocks {self.map_blocks} must be 4 block numbers in 1..{self.depth}")

    @property
    def grid(self) -> Size3:
        return tuple(n // p for n, p in zip(self.img_size, self.patch_size))  # type: ignore[return-value]


PRESETS = {
    "micro": ViT3DConfig(patch_size=(4, 8, 8), img_size=(16, 48, 48), embed_dim=96, depth=4, num_heads=3,
                         map_blocks=(1, 2, 3, 4)),
    "tiny": ViT3DConfig(patch_size=(4, 8, 8), img_size=(16, 48, 48), embed_dim=192, depth=8, num_heads=3,
                        map_blocks=(2, 4, 6, 8)),
    "paper": ViT3DConfig(),
}


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(N,) positions -> (N, dim): [sin(p·ω_k), cos(p·ω_k)], ω_k = 10000^(-k/(dim/2)) (MAE's form)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double()[:, None] * omega[None]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_3d(dim: int, grid: Size3, cls_token: bool = True) -> torch.Tensor:
    """(1 [+ 1] + gd·gh·gw, dim) float32 fixed positions: a third of the width per axis (D, H, W),
    patches in (gd, gh, gw) raster order; the cls position is zeros."""
    axes = torch.meshgrid(*[torch.arange(n) for n in grid], indexing="ij")
    emb = torch.cat([sincos_1d(dim // 3, a.reshape(-1)) for a in axes], dim=1).float()  # (N, dim)
    return torch.cat([torch.zeros(1, dim), emb]) if cls_token else emb


class Block3D(nn.Module):
    """Pre-norm transformer block (MAE / timm): x + attn(norm1 x), then x + mlp(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed3D(nn.Module):
    """(B, C, D, H, W) -> (B, gd·gh·gw, E) by a Conv3d with kernel = stride = patch."""

    def __init__(self, patch_size: Size3, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "b e gd gh gw -> b (gd gh gw) e")


class MAEViT3D(Encoder):
    """3D ViT encoder; input (B, 3, D, H, W), each axis a multiple of the patch size."""

    family = "profound_vit"
    spatial_dims = 3

    def __init__(self, config: ViT3DConfig, input_sequences: tuple[str, ...] = SEQUENCES, size: str = "custom") -> None:
        super().__init__()
        unknown = [s for s in input_sequences if s not in SEQUENCES]
        if unknown or not input_sequences:
            raise ValueError(f"profound_vit: input_sequences must be a non-empty subset of {SEQUENCES}, got {input_sequences}")
        self.config, self.size, self.input_sequences = config, size, tuple(input_sequences)
        e = config.embed_dim
        self.patch_embed = PatchEmbed3D(config.patch_size, config.in_chans, e)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
        self.register_buffer("pos_embed", sincos_3d(e, config.grid)[None])  # fixed: (1, 1 + N, E)
        self.blocks = nn.ModuleList(Block3D(e, config.num_heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(e, eps=1e-6)
        self.pooled_dim = e
        self.feature_info = [MapInfo(e, config.patch_size) for _ in range(4)]
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's init: xavier-uniform patch projection (as a linear map) and linears, cls N(0, 0.02²)."""
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def grid(self, spatial: tuple[int, ...]) -> Size3:
        """(D, H, W) -> patch grid; raises ValueError unless every axis is a multiple of the patch."""
        p = self.config.patch_size
        if len(spatial) != 3 or any(n < q or n % q for n, q in zip(spatial, p)):
            raise ValueError(f"profound_vit ({self.size}): input size (D, H, W) = {tuple(spatial)} must be a positive "
                             f"multiple of the patch size {p} on every axis; crop or pad the volume to fit")
        return tuple(n // q for n, q in zip(spatial, p))  # type: ignore[return-value]

    check_input_size = grid  # the pretraining helpers call it by this name

    def positions(self, grid: Size3) -> torch.Tensor:
        """(1, 1 + N, E): the stored positions for the stored grid, recomputed for another one."""
        if tuple(grid) == self.config.grid:
            return self.pos_embed
        return sincos_3d(self.config.embed_dim, grid)[None].to(self.pos_embed)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, Size3]:
        """(B, 3, D, H, W) -> patch tokens with positions (B, N, E) (no cls) and the grid."""
        if x.ndim != 5 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"profound_vit: input must be (B, {self.config.in_chans}, D, H, W), got {tuple(x.shape)}")
        grid = self.grid(tuple(x.shape[2:]))
        return self.patch_embed(x) + self.positions(grid)[:, 1:], grid

    def with_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, E) patch tokens -> (B, 1 + N, E) with the cls token (its position is zeros)."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None = None) -> np.ndarray:
        """As `profound_conv`: (3, D, H, W), channels z-scored over non-zero voxels, absent ones zero."""
        return zscore_nonzero_channels(image, sequences, "profound_vit")

    def forward_features(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        """x (B, 3, D, H, W) -> {"pooled": (B, E), "maps": 4 × (B, E, D/pd, H/ph, W/pw)}; `slices` ignored."""
        tokens, grid = self.embed(x)
        tokens = self.with_cls(tokens)
        collected = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i + 1 in self.config.map_blocks:
                collected.append(tokens)
        gd, gh, gw = grid
        maps = [rearrange(self.norm(t[:, 1:]), "b (gd gh gw) e -> b e gd gh gw", gd=gd, gh=gh, gw=gw) for t in collected]
        return {"pooled": self.norm(tokens)[:, 1:].mean(dim=1), "maps": maps}


@register_encoder("profound_vit")
def create_profound_vit(size: str = "micro", input_sequences: tuple[str, ...] = SEQUENCES, **kw) -> MAEViT3D:
    """3D MAE ViT at a size preset ("micro", "tiny", "paper"); `kw` overrides ViT3DConfig fields."""
    if size not in PRESETS:
        raise ValueError(f"profound_vit: unknown size {size!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ViT3DConfig)}
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ValueError(f"profound_vit: unknown option(s) {unknown}; valid options are {sorted(fields)}")
    config = dataclasses.replace(PRESETS[size], **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
    return MAEViT3D(config, input_sequences=input_sequences, size=size)
