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
from taskalign.encoders.convnextv2 import Block, ConvNeXtV2, init_convnext_weights
from taskalign.pretrain.cohort import case_shapes
from taskalign.pretrain.loop import Checkpointer, Objective, Progress, Stage, StageSchedule, run_stages
from taskalign.pretrain.registry import register_pretrainer

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


def _check_cases(encoder: nn.Module, cases: list[Case], steps: int, batch_size: int, lr: float) -> None:
    if not cases:
        raise ValueError("masked pretraining: the pretraining cohort is empty; pass at least one case")
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"masked pretraining: need steps >= 1, batch_size >= 1, lr > 0; got {steps}, {batch_size}, {lr}")
    shapes = case_shapes(cases)
    if len(shapes) > 1:
        raise ValueError(f"masked pretraining: cases must share one volume size to be batched, got {sorted(shapes)}; "
                         f"crop them first")
    encoder.check_input_size(shapes.pop())


class VolumeBank:
    """Preprocessed volumes of a cohort, drawn at random; kept in memory when they fit in
    `cache_bytes` (a CPU-size cohort does; a paper-size cohort is preprocessed per draw)."""

    def __init__(self, encoder: nn.Module, cases: list[Case], cache_bytes: int = 2**32) -> None:
        self.encoder, self.cases = encoder, cases
        self.cache: dict[int, np.ndarray] | None = {} if len(cases) * cases[0].image.size * 4 <= cache_bytes else None

    def volume(self, i: int) -> np.ndarray:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        case = self.cases[i]
        v = self.encoder.preprocess(case.image, SEQUENCES, case.gland)  # (3, D, H, W)
        if self.cache is not None:
            self.cache[i] = v
        return v

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """(B, 3, D, H, W) float32: random cases, each flipped left-right (along W) with p = 0.5."""
        picks = torch.randint(len(self.cases), (batch_size,), generator=generator).tolist()
        flips = (torch.rand(batch_size, generator=generator) < 0.5).tolist()
        volumes = [self.volume(i)[..., ::-1] if f else self.volume(i) for i, f in zip(picks, flips)]
        return torch.from_numpy(np.ascontiguousarray(np.stack(volumes)))


class MaskedObjective(Objective):
    """A masked-reconstruction model (FCMAE or MAE) on random batches of a `VolumeBank`."""

    def __init__(self, model: nn.Module, bank: VolumeBank, batch_size: int, seed: int, where: str) -> None:
        super().__init__()
        self.model, self.bank, self.batch_size, self.where = model, bank, batch_size, where
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, step: int, total_steps: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        imgs = self.bank.batch(self.batch_size, self.generator).to(device)  # (B, 3, D, H, W)
        num_patches = math.prod(self.model.grid(imgs.shape[2:]))
        mask = random_masking(imgs.shape[0], num_patches, self.model.mask_ratio, "cpu", self.generator).to(device)
        return self.model(imgs, mask)[0]


def masked_stages(encoder: nn.Module, build: Callable[[], nn.Module], cases: list[Case], steps: int,
                  batch_size: int, lr: float, seed: int, where: str) -> list[Stage]:
    """The one stage of masked reconstruction: AdamW betas (0.9, 0.95), weight decay 0.05, warmup
    10 % of the steps, cosine to 0 (the FCMAE / MAE recipe)."""
    _check_cases(encoder, cases, steps, batch_size, lr)
    device = next(encoder.parameters()).device
    bank = VolumeBank(encoder, cases)

    def objective() -> MaskedObjective:
        model = build().to(device)
        model.grid(cases[0].shape)  # a grid too small to mask fails here, before any work
        return MaskedObjective(model, bank, batch_size, seed, where)

    schedule = StageSchedule(steps, lr, max(1, steps // 10), weight_decay=0.05, betas=(0.9, 0.95))
    return [Stage(where, objective, schedule)]


def train_masked(encoder: nn.Module, build: Callable[[], nn.Module], cases: list[Case], steps: int,
                 batch_size: int, lr: float, seed: int, progress: Progress | None,
                 checkpoint: Checkpointer | None = None, where: str = "masked pretraining",
                 stop_after: int | None = None) -> list[float]:
    """The masked-reconstruction run FCMAE and MAE share: `build()` wraps `encoder` with its
    decoder; the caller's RNG state and the encoder's train/eval mode are restored; returns the
    loss per step (the decoder is discarded)."""
    was_training = encoder.training
    stages = masked_stages(encoder, build, cases, steps, batch_size, lr, seed, where)
    try:
        with torch.random.fork_rng(devices=[]):
            return run_stages(stages, seed, checkpoint, progress, stop_after)
    finally:
        encoder.train(was_training)


@register_pretrainer("profound_conv")
def pretrain_fcmae(encoder: ConvNeXtV2, cases: list[Case], steps: int, batch_size: int, lr: float, seed: int,
                   progress: Progress | None = None, checkpoint: Checkpointer | None = None,
                   stop_after: int | None = None) -> list[float]:
    """Train `encoder` in place with FCMAE on `cases` (random batches, random left-right flips);
    returns the loss per step. Everything random derives from `seed`."""
    decoder_dim = DECODER_DIMS.get(encoder.size, min(512, encoder.pooled_dim))
    return train_masked(encoder, lambda: FCMAE(encoder, decoder_dim=decoder_dim), cases, steps, batch_size, lr,
                        seed, progress, checkpoint, "FCMAE pretraining", stop_after)
