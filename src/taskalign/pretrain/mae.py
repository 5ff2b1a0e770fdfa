"""MAE pretraining of the 3D ViT (`profound_vit`; He et al. 2022, made volumetric as ProFound does).

    mask     random on the patch grid, ratio 0.75 (exactly L - int(0.25·L) patches removed)
    encoder  the ViT on the kept patch tokens only (with their fixed positions) and the cls token
    decoder  Linear to decoder_dim, mask tokens at removed positions, fixed 3D sin-cos positions,
             `decoder_depth` blocks, LayerNorm, Linear to prod(patch) · in_chans values per patch
             (paper: 384-d × 8 blocks, 16 heads)
    loss     MSE on removed patches only, targets normalised per patch

Parameter names (`mask_token`, `decoder_embed`, `decoder_pos_embed`, `decoder_blocks`,
`decoder_norm`, `decoder_pred`) follow MAE files; the published loader leaves them out. Batching,
the optimiser and the schedule are those of FCMAE (`taskalign.pretrain.fcmae`).
"""
from __future__ import annotations

import math
import torch
from torch import nn

from taskalign.data.case import Case
from taskalign.encoders.mae_vit3d import Block3D, MAEViT3D, sincos_3d
from taskalign.pretrain.fcmae import patchify, random_masking, train_masked
from taskalign.pretrain.loop import Checkpointer, Progress
from taskalign.pretrain.registry import register_pretrainer

DECODERS = {"micro": (96, 1, 3), "tiny": (192, 2, 6), "paper": (384, 8, 16)}  # (dim, depth, heads)


class MAE3D(nn.Module):
    """MAE around a `MAEViT3D` encoder; `forward(imgs)` returns (loss, pred, mask)."""

    def __init__(self, encoder: MAEViT3D, decoder_dim: int = 384, decoder_depth: int = 8, decoder_heads: int = 16,
                 mask_ratio: float = 0.75, norm_pix_loss: bool = True) -> None:
        super().__init__()
        if not isinstance(encoder, MAEViT3D):
            raise ValueError(f"MAE needs a MAEViT3D encoder (profound_vit), got {type(encoder).__name__}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MAE: mask_ratio must be in (0, 1), got {mask_ratio}")
        cfg = encoder.config
        self.encoder, self.mask_ratio, self.norm_pix_loss = encoder, mask_ratio, norm_pix_loss
        self.patch_size, self.decoder_dim = cfg.patch_size, decoder_dim
        self.decoder_embed = nn.Linear(cfg.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_3d(decoder_dim, cfg.grid)[None])
        self.decoder_blocks = nn.ModuleList(Block3D(decoder_dim, decoder_heads, 4.0) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, math.prod(cfg.patch_size) * cfg.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        for part in (self.decoder_embed, self.decoder_blocks, self.decoder_pred):
            for m in part.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def grid(self, spatial) -> tuple[int, int, int]:
        return self.encoder.grid(tuple(spatial))

    def forward_encoder(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs (B, C, D, H, W), mask (B, L) 1 = removed -> latent (B, 1 + K, E) of the kept patches."""
        tokens, _ = self.encoder.embed(imgs)  # (B, L, E)
        keep = (mask == 0).nonzero()[:, 1].view(mask.shape[0], -1)  # (B, K) kept indices, ascending
        tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        x = self.encoder.with_cls(tokens)
        for block in self.encoder.blocks:
            x = block(x)
        return self.encoder.norm(x)

    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor, grid) -> torch.Tensor:
        """latent (B, 1 + K, E), mask (B, L) -> pred (B, L, prod(patch) · C)."""
        x = self.decoder_embed(latent)  # (B, 1 + K, Dd)
        b, length = mask.shape
        full = self.mask_token.expand(b, length, -1).clone()
        full[mask == 0] = x[:, 1:].reshape(-1, x.shape[-1])  # kept tokens back at their positions
        pos = self.decoder_pos_embed if tuple(grid) == self.encoder.config.grid else \
            sincos_3d(self.decoder_dim, grid)[None].to(x)
        x = torch.cat([x[:, :1], full], dim=1) + pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over removed patches of the per-patch MSE; targets normalised per patch."""
        target = patchify(imgs, self.patch_size).float()  # (B, L, P)
        if self.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        grid = self.grid(imgs.shape[2:])
        if mask is None:
            mask = random_masking(imgs.shape[0], math.prod(grid), self.mask_ratio, imgs.device, generator)
        pred = self.forward_decoder(self.forward_encoder(imgs, mask), mask, grid)
        return self.forward_loss(imgs, pred, mask), pred, mask


@register_pretrainer("profound_vit")
def pretrain_mae(encoder: MAEViT3D, cases: list[Case], steps: int, batch_size: int, lr: float, seed: int,
                 progress: Progress | None = None, checkpoint: Checkpointer | None = None,
                 stop_after: int | None = None) -> list[float]:
    """Train `encoder` in place with MAE on `cases` (FCMAE's batches, optimiser and schedule);
    returns the loss per step; the decoder is discarded; the caller's RNG state is restored."""
    dim, depth, heads = DECODERS.get(encoder.size, DECODERS["micro"])
    return train_masked(encoder, lambda: MAE3D(encoder, dim, depth, heads), cases, steps, batch_size, lr, seed,
                        progress, checkpoint, "MAE pretraining", stop_after)
