"""A 2D DINOv2-style vision transformer with register tokens (Oquab et al. 2023; Darcet et al. 2024).

Attribute names follow DINOv2 so a published state_dict loads key for key:
`cls_token`, `pos_embed`, `register_tokens`, `mask_token`, `patch_embed.proj`,
`blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}`, `norm`.

Token order after `prepare_tokens`: [cls, registers, extra tokens (caller's), patches].
As in DINOv2, `pos_embed` covers cls + patches only; registers and extra tokens are inserted
after positions are added, so they carry no position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    patch_size: int = 14
    in_chans: int = 3
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    pos_grid: int = 37              # side of the stored position grid (518 / 14 for DINOv2)
    layerscale_init: float = 1e-5   # DINOv2's training value
    pos_antialias: bool = True      # DINOv2-with-registers resizes positions with antialias


class PatchEmbed(nn.Module):
    """(N, C, H, W) -> (N, (H/p)·(W/p), E) by a stride-p convolution."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (N, E, h, w)
        return rearrange(x, "n e h w -> n (h w) e")


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = rearrange(self.qkv(x), "n t (three h d) -> three n h t d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (N, heads, T, d)
        return self.proj(rearrange(out, "n h t d -> n t (h d)"))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (CaiT); small init keeps blocks near identity."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layerscale_init: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_hw: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Resize stored positions (1, 1 + G², E) to a (gh, gw) patch grid -> (1, 1 + gh·gw, E).

    The cls position is kept; patch positions are resized bicubically (in float32). Returns the
    input unchanged when the grid already matches.
    """
    n_patch = pos_embed.shape[1] - 1
    side = int(round(math.sqrt(n_patch)))
    if side * side != n_patch:
        raise ValueError(f"pos_embed holds {n_patch} patch positions, not a square grid")
    if (side, side) == tuple(grid_hw):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    grid = rearrange(patch_pos.float(), "one (h w) e -> one e h w", h=side)
    grid = F.interpolate(grid, size=tuple(grid_hw), mode="bicubic", align_corners=False, antialias=antialias)
    patch_pos = rearrange(grid, "one e h w -> one (h w) e").to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=1)


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT backbone. `prepare_tokens` + `run_blocks` are the pieces the 2.5D encoder uses;
    `forward_features` is the plain DINOv2 feature dict."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.patch_size
        self.embed_dim = cfg.embed_dim
        self.num_register_tokens = cfg.num_register_tokens
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, cfg.embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, cfg.embed_dim))
        # DINOv2 uses mask_token only for iBOT masking, which this project does not run; a buffer
        # keeps the checkpoint key without a parameter that never receives a gradient.
        self.register_buffer("mask_token", torch.zeros(1, cfg.embed_dim))
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.layerscale_init) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def grid_size(self, h: int, w: int) -> tuple[int, int]:
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(
                f"input slices of {h}x{w} pixels are not a multiple of the patch size {p}; "
                f"crop or pad the volume in-plane to a multiple of {p}"
            )
        return h // p, w // p

    def prepare_tokens(self, x: torch.Tensor, extra_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) images [+ (N, k, E) extra tokens] -> (N, 1 + R + k + h·w, E) tokens."""
        grid = self.grid_size(x.shape[-2], x.shape[-1])
        patches = self.patch_embed(x)  # (N, h·w, E)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + interpolate_pos_embed(self.pos_embed, grid, self.cfg.pos_antialias)
        parts = [tokens[:, :1], self.register_tokens.expand(x.shape[0], -1, -1)]
        if extra_tokens is not None:
            parts.append(extra_tokens)
        parts.append(tokens[:, 1:])
        return torch.cat(parts, dim=1)

    def run_blocks(self, tokens: torch.Tensor,
                   collect: tuple[int, ...] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run every block; returns the final (un-normed) tokens and the outputs of the blocks
        whose 0-based indices are in `collect` (un-normed, in block order)."""
        collected = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in collect:
                collected.append(tokens)
        return tokens, collected

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C, H, W) -> DINOv2's named feature dict (cls, registers, patch tokens after the final norm)."""
        tokens, _ = self.run_blocks(self.prepare_tokens(x))
        normed = self.norm(tokens)
        r = self.num_register_tokens
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_norm_regtokens": normed[:, 1 : 1 + r],
            "x_norm_patchtokens": normed[:, 1 + r :],
            "x_prenorm": tokens,
        }
