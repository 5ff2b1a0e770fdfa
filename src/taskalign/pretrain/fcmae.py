"""FCMAE: fully convolutional masked autoencoder pretraining of the 3D ConvNeXt-V2 (`profound_conv`).

A dense re-implementation of the sparse original (ConvNeXt-V2, as ProFound uses it):

    mask     random on the patch grid (patch = the encoder's total stride), ratio 0.6; 1 = removed
    encoder  the ConvNeXt-V2 with removed positions zeroed after the stem, after every downsampling
             layer and after every block (the mask upsampled to each stage's grid), so no removed
             voxel reaches a kept one, as submanifold sparse convolution guarantees
    decoder  1x1x1 conv last width -> decoder_dim, a learnable mask token at removed positions,
             one ConvNeXt-V2 block, 1x1x1 conv to prod(patch) * in_chans values per patch
    loss     MSE on removed patches only, targets normalised per patch (mean / var, eps 1e-6)

The one difference from sparse convolution: GRN's global norm also sees the (zeroed-afterwards)
values at removed positions. Parameter names (`encoder.*`, `proj`, `mask_token`, `decoder.0.*`,
`pred`) follow the published FCMAE files after their sparse names are made dense.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from einops import rearrange, repeat
from torch import nn

from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders.base import register_pretrainer
from taskalign.encoders.convnextv2 import Block, ConvNeXtV2, init_convnext_weights
from taskalign.train.schedule import cosine_schedule

DECODER_DIMS = {"micro": 64, "tiny": 128, "paper": 512}


def patchify(imgs: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, L, pd*ph*pw*C), patches in (gd, gh, gw) raster order."""
    pd, ph, pw = patch_size
    return rearrange(imgs, "b c (gd pd) (gh ph) (gw pw) -> b (gd gh gw) (pd ph pw c)", pd=pd, ph=ph, pw=pw)


def unpatchify(x: torch.Tensor, patch_size: Sequence[int], grid: Sequence[int], in_chans: int) -> torch.Tensor:
    """(B, L, pd*ph*pw*C) -> (B, C, gd*pd, gh*ph, gw*pw); the inverse of `patchify`."""
    (pd, ph, pw), (gd, gh, gw) = patch_size, grid
    return rearrange(x, "b (gd gh gw) (pd ph pw c) -> b c (gd pd) (gh ph) (gw pw)",
                     gd=gd, gh=gh, gw=gw, pd=pd, ph=ph, pw=pw, c=in_chans)


def random_masking(batch: int, num_patches: int, mask_ratio: float, device: torch.device | str = "cpu",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, L) float mask, 1 = removed: exactly L - int(L * (1 - mask_ratio)) removed per sample."""
    len_keep = int(num_patches * (1 - mask_ratio))
    if len_keep < 1 or len_keep >= num_patches:
        raise ValueError(
            f"FCMAE: a grid of {num_patches} patches at mask_ratio {mask_ratio} keeps {len_keep}; need at least "
            f"one kept and one removed patch (use a larger volume or a mask_ratio in (0, 1))"
        )
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    ranks = noise.argsort(dim=1).argsort(dim=1)  # rank of each patch's noise within its sample
    return (ranks >= len_keep).float()


def upsample_mask(mask: torch.Tensor, grid: Sequence[int], scale: Sequence[int]) -> torch.Tensor:
    """(B, L) patch mask -> (B, 1, gd*sd, gh*sh, gw*sw) voxel mask on a finer grid."""
    (gd, gh, gw), (sd, sh, sw) = grid, scale
    return repeat(mask, "b (gd gh gw) -> b 1 (gd sd) (gh sh) (gw sw)", gd=gd, gh=gh, gw=gw, sd=sd, sh=sh, sw=sw)


class FCMAE(nn.Module):
    """FCMAE around a `ConvNeXtV2` encoder; `forward(imgs)` returns (loss, pred, mask)."""

    def __init__(self, encoder: ConvNeXtV2, decoder_dim: int = 512, mask_ratio: float = 0.6,
                 norm_pix_loss: bool = True) -> None:
        super().__init__()
        if not isinstance(encoder, ConvNeXtV2):
            raise ValueError(f"FCMAE needs a ConvNeXtV2 encoder (profound_conv), got {type(encoder).__name__}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"FCMAE: mask_ratio must be in (0, 1), got {mask_ratio}")
        self.encoder = encoder
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.patch_size = encoder.total_stride
        self.in_chans = encoder.config.in_chans
        self.proj = nn.Conv3d(encoder.pooled_dim, decoder_dim, kernel_size=1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1, 1))
        self.decoder = nn.Sequential(Block(decoder_dim, 0.0, encoder.config.kernel_size))
        self.pred = nn.Conv3d(decoder_dim, math.prod(self.patch_size) * self.in_chans, kernel_size=1)
        for part in (self.proj, self.decoder, self.pred):
            part.apply(init_convnext_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def grid(self, spatial: Sequence[int]) -> tuple[int, int, int]:
        """(D, H, W) of an input -> (gd, gh, gw) patch grid; raises ValueError if it does not divide."""
        self.encoder.check_input_size(tuple(spatial))
        return tuple(n // p for n, p in zip(spatial, self.patch_size))  # type: ignore[return-value]

    def forward_encoder(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs (B, C, D, H, W), mask (B, L) -> latent (B, C_last, gd, gh, gw), removed voxels zeroed."""
        grid = self.grid(imgs.shape[2:])
        x = imgs
        for info, downsample, stage in zip(self.encoder.feature_info, self.encoder.downsample_layers, self.encoder.stages):
            scale = tuple(t // s for t, s in zip(self.patch_size, info.stride))
            keep = 1.0 - upsample_mask(mask, grid, scale).to(x.dtype)  # (B, 1, D_i, H_i, W_i)
            x = downsample(x) * keep
            for block in stage:
                x = block(x) * keep
        return x

    def forward_decoder(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """latent (B, C_last, gd, gh, gw), mask (B, L) -> pred (B, L, prod(patch) * C)."""
        x = self.proj(latent)  # (B, E, gd, gh, gw)
        removed = upsample_mask(mask, x.shape[2:], (1, 1, 1)).to(x.dtype)
        x = x * (1.0 - removed) + self.mask_token * removed
        x = self.pred(self.decoder(x))
        return rearrange(x, "b k gd gh gw -> b (gd gh gw) k")

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over removed patches of the per-patch MSE; targets normalised per patch."""
        target = patchify(imgs, self.patch_size).float()  # (B, L, P)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """imgs (B, C, D, H, W) -> (loss, pred (B, L, prod(patch) * C), mask (B, L), 1 = removed)."""
        if mask is None:
            num_patches = math.prod(self.grid(imgs.shape[2:]))
            mask = random_masking(imgs.shape[0], num_patches, self.mask_ratio, imgs.device, generator)
        latent = self.forward_encoder(imgs, mask)
        pred = self.forward_decoder(latent, mask)
        return self.forward_loss(imgs, pred, mask), pred, mask


def warmup_cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate at `step` (0-based): linear warmup to `base_lr`, then half-cosine to `min_lr`."""
    return cosine_schedule(step, total_steps, base_lr, min_lr, warmup_steps)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and 1-D parameters (norms), as in the FCMAE recipe."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _check_cases(encoder: ConvNeXtV2, cases: list[Case], steps: int, batch_size: int, lr: float) -> None:
    if not cases:
        raise ValueError("FCMAE pretraining: the pretraining cohort is empty; pass at least one case")
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"FCMAE pretraining: need steps >= 1, batch_size >= 1, lr > 0; got {steps}, {batch_size}, {lr}")
    shapes = {c.shape for c in cases}
    if len(shapes) > 1:
        raise ValueError(f"FCMAE pretraining: cases must share one volume size to be batched, got {sorted(shapes)}; crop them first")
    encoder.check_input_size(shapes.pop())


class _Cohort:
    """Draws random preprocessed batches; keeps the preprocessed volumes when they fit in
    `cache_bytes` (the quick cohort does; a paper-size cohort is preprocessed per draw)."""

    def __init__(self, encoder: ConvNeXtV2, cases: list[Case], rng: np.random.Generator, cache_bytes: int = 2**31) -> None:
        self.encoder, self.cases, self.rng = encoder, cases, rng
        self.cache: dict[int, np.ndarray] | None = {} if len(cases) * cases[0].image.size * 4 <= cache_bytes else None

    def volume(self, i: int) -> np.ndarray:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        case = self.cases[i]
        v = self.encoder.preprocess(case.image, SEQUENCES, case.gland)  # (3, D, H, W)
        if self.cache is not None:
            self.cache[i] = v
        return v

    def batch(self, batch_size: int) -> np.ndarray:
        """(B, 3, D, H, W) float32: random cases, each flipped left-right (along W) with p = 0.5."""
        picks = self.rng.choice(len(self.cases), size=batch_size, replace=len(self.cases) < batch_size)
        volumes = [self.volume(i) for i in picks]
        volumes = [v[..., ::-1] if self.rng.random() < 0.5 else v for v in volumes]
        return np.ascontiguousarray(np.stack(volumes))


def _train_steps(model: FCMAE, cohort: _Cohort, steps: int, batch_size: int, lr: float,
                 progress: Callable[[int, float], None] | None) -> list[float]:
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(_param_groups(model, 0.05), lr=lr, betas=(0.9, 0.95))
    warmup_steps = max(1, steps // 10)
    losses: list[float] = []
    for step in range(steps):
        imgs = torch.from_numpy(cohort.batch(batch_size)).to(device)  # (B, 3, D, H, W)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, steps, lr, warmup_steps)
        loss, _, _ = model(imgs)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"FCMAE pretraining: loss is {loss.item()} at step {step}; lower lr ({lr}) or check the "
                f"cases for NaN/Inf voxels"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
    optimizer.zero_grad(set_to_none=True)
    return losses


@register_pretrainer("profound_conv")
def pretrain_fcmae(encoder: ConvNeXtV2, cases: list[Case], steps: int, batch_size: int, lr: float, seed: int,
                   progress: Callable[[int, float], None] | None = None) -> list[float]:
    """Train `encoder` in place with FCMAE on `cases` (random batches, random left-right flips,
    AdamW betas (0.9, 0.95) with weight decay 0.05, warmup + cosine); returns the loss per step.
    The decoder is discarded. Everything random derives from `seed`; the caller's RNG state is
    restored afterwards."""
    decoder_dim = DECODER_DIMS.get(encoder.size, min(512, encoder.pooled_dim))
    return train_masked(encoder, lambda: FCMAE(encoder, decoder_dim=decoder_dim), cases, steps, batch_size, lr,
                        seed, progress)


def train_masked(encoder: nn.Module, build: Callable[[], nn.Module], cases: list[Case], steps: int,
                 batch_size: int, lr: float, seed: int, progress: Callable[[int, float], None] | None) -> list[float]:
    """The masked-reconstruction loop FCMAE and MAE share: `build()` wraps `encoder` with its
    decoder (built under `seed`), then `steps` steps on `cases`; the caller's RNG state and the
    encoder's train/eval mode are restored; returns the loss per step."""
    _check_cases(encoder, cases, steps, batch_size, lr)
    device = next(encoder.parameters()).device
    on_accelerator = device.type != "cpu"
    was_training = encoder.training
    # devices=[] forks the CPU generator only; device_type must still name a device module
    # (None is rejected by older torch releases)
    with torch.random.fork_rng(devices=[device] if on_accelerator else [],
                               device_type=device.type if on_accelerator else "cuda"):
        torch.manual_seed(seed)
        model = build().to(device).train()
        model.grid(cases[0].shape)  # a grid too small to mask fails here, before any work
        try:
            return _train_steps(model, _Cohort(encoder, cases, np.random.default_rng(seed)), steps, batch_size, lr, progress)
        finally:
            encoder.train(was_training)
