"""ProViCNet as a 2.5D encoder (Lee et al. 2025, arXiv 2502.00366): a DINOv2 ViT with registers,
run slice by slice on each MRI sequence, with learned slice-index and slice-count tokens.

For every sequence s and slice z, the 2D input is slices (z-1, z, z+1) of s as three channels
(edge slices repeat the border). Tokens per slice:

    [cls, 4 registers, axis_pos(z), axis_max(D), (sequence token), h·w patches]

`axis_pos` / `axis_max` are Linear(1, E) of the raw slice index and slice count, as published.
The sequence token (in-house shared-backbone variant, like the published code's modality token)
is an extra token after `axis_max`: `seq_embed`, one learned row per sequence of `SEQUENCES`, so
its shape does not depend on which sequences a task feeds. With `sequence_token=False` and one
input sequence the module's keys are exactly those of a published per-sequence file (minus its
`head.*` and `CL_Head.*`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from einops import rearrange, reduce, repeat
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, MapInfo, register_encoder
from taskalign.encoders.dinov2_vit import DinoVisionTransformer, ViTConfig

NUM_MAPS = 4


@dataclass(frozen=True)
class ProViCNetConfig:
    vit: ViTConfig
    img_size: int                  # slice side the preset is sized for (positions are stored for it)
    map_blocks: tuple[int, ...]    # 1-based blocks whose outputs become `maps`
    sequence_token: bool = True    # learned per-sequence token (shared backbone for all sequences)
    preset: str = "custom"         # size name; pretraining picks its head sizes and thresholds by it


def provicnet_config(size: str) -> ProViCNetConfig:
    """Size presets. `paper`: DINOv2 ViT-S/14 with 4 registers, 448×448 slices (positions stored
    for DINOv2's 37×37 grid and resized to 32×32). `micro` / `tiny`: the same code for a CPU."""
    if size == "paper":
        vit = ViTConfig(patch_size=14, embed_dim=384, depth=12, num_heads=6, pos_grid=37, layerscale_init=1e-5)
        return ProViCNetConfig(vit=vit, img_size=448, map_blocks=(3, 6, 9, 12), preset=size)
    # Short CPU runs: LayerScale starts at 0.1, not 1e-5, so blocks contribute within ~100 steps.
    if size == "tiny":
        vit = ViTConfig(patch_size=8, embed_dim=192, depth=8, num_heads=3, pos_grid=8, layerscale_init=0.1)
        return ProViCNetConfig(vit=vit, img_size=64, map_blocks=(2, 4, 6, 8), preset=size)
    if size == "micro":
        vit = ViTConfig(patch_size=8, embed_dim=96, depth=4, num_heads=3, pos_grid=6, layerscale_init=0.1)
        return ProViCNetConfig(vit=vit, img_size=48, map_blocks=(1, 2, 3, 4), preset=size)
    raise ValueError(f"unknown provicnet size {size!r}; choose 'micro', 'tiny' or 'paper'")


def zscore_in_mask(volume: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(D, H, W) -> float32 z-score with mean and std taken inside `mask` (the gland); the
    volume's non-zero voxels when the mask is absent or empty; every voxel if all are zero."""
    region = mask > 0 if mask is not None and np.any(mask) else volume != 0
    if not region.any():
        region = np.ones(volume.shape, dtype=bool)
    values = volume[region].astype(np.float64)
    std = max(float(values.std()), 1e-6)
    return ((volume - values.mean()) / std).astype(np.float32)


def neighbour_stack(x: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W), slices (S,) -> (B, C, S, 3, H, W): slices z-1, z, z+1 of every channel,
    the border slice repeated at the edges."""
    depth = x.shape[2]
    index = torch.stack([slices - 1, slices, slices + 1], dim=-1).clamp(0, depth - 1)  # (S, 3)
    return x[:, :, index]


def check_sequences(input_sequences: tuple[str, ...]) -> None:
    """ValueError unless `input_sequences` are distinct names from SEQUENCES (at least one)."""
    unknown = [s for s in input_sequences if s not in SEQUENCES]
    if not input_sequences or unknown or len(set(input_sequences)) != len(input_sequences):
        raise ValueError(f"input_sequences {input_sequences!r} must be distinct names from {SEQUENCES} (at least one)")


class ProViCNetEncoder(Encoder):
    """2.5D ProViCNet encoder; holds `backbone` (DINOv2 ViT), `axis_pos`, `axis_max`, `seq_embed`."""

    family = "provicnet"
    spatial_dims = 2

    def __init__(self, cfg: ProViCNetConfig, input_sequences: tuple[str, ...] = SEQUENCES) -> None:
        super().__init__()
        check_sequences(input_sequences)
        if len(cfg.map_blocks) != NUM_MAPS or not all(1 <= b <= cfg.vit.depth for b in cfg.map_blocks):
            raise ValueError(f"map_blocks {cfg.map_blocks} must be {NUM_MAPS} block numbers in 1..{cfg.vit.depth}")
        self.cfg = cfg
        self.input_sequences = tuple(input_sequences)
        embed_dim, p = cfg.vit.embed_dim, cfg.vit.patch_size
        self.embed_dim = embed_dim
        self.patch_size = p
        self.backbone = DinoVisionTransformer(cfg.vit)
        self.axis_pos = nn.Linear(1, embed_dim)
        self.axis_max = nn.Linear(1, embed_dim)
        self.seq_embed = nn.Embedding(len(SEQUENCES), embed_dim) if cfg.sequence_token else None
        # Published init: weights N(0, 0.02²), biases 0. With zero bias and pre-LayerNorm blocks a
        # token z·w is seen as LN(z·w) = LN(w) for every z > 0, so the slice facts would only act
        # through later residual updates; so here the biases start at N(0, 0.02²) as well.
        for param in (self.axis_pos.weight, self.axis_pos.bias, self.axis_max.weight, self.axis_max.bias):
            nn.init.normal_(param, std=0.02)
        if self.seq_embed is not None:
            nn.init.normal_(self.seq_embed.weight, std=0.02)
        n_seq = len(self.input_sequences)
        self.pooled_dim = embed_dim * n_seq
        self.feature_info = [MapInfo(embed_dim * n_seq, (1, p, p)) for _ in range(NUM_MAPS)]

    @property
    def num_prefix_tokens(self) -> int:
        """cls + registers + slice-index + slice-count (+ sequence) tokens before the patches."""
        return 1 + self.backbone.num_register_tokens + 2 + (self.seq_embed is not None)

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None) -> np.ndarray:
        """(C, D, H, W) in units, channels named by `sequences` -> (len(input_sequences), D, H, W)
        float32, each channel z-scored inside the gland (non-zero voxels without a gland)."""
        if image.ndim != 4 or image.shape[0] != len(sequences):
            raise ValueError(f"image {image.shape} must be (C, D, H, W) with C = len(sequences) = {len(sequences)}")
        missing = [s for s in self.input_sequences if s not in sequences]
        if missing:
            raise ValueError(
                f"provicnet expects sequences {self.input_sequences}, the input lacks {missing}; "
                f"build the encoder with input_sequences={tuple(sequences)} or feed the missing ones"
            )
        channels = [zscore_in_mask(image[list(sequences).index(s)], gland) for s in self.input_sequences]
        return np.stack(channels).astype(np.float32)

    def encode_slices(
        self,
        images: torch.Tensor,
        slice_index: torch.Tensor,
        slice_count: torch.Tensor,
        sequence_index: torch.Tensor | None = None,
    ) -> dict:
        """2D slices (N, 3, H, W) with their index z (N,), slice count D (N,) and sequence index
        into `SEQUENCES` (N,) -> {"cls": (N, E), "patch": (N, h·w, E), "maps": 4 × (N, h·w, E),
        "grid": (h, w)}; every output after the backbone's final norm."""
        axis = torch.stack([slice_index, slice_count], dim=-1).to(images.dtype)  # (N, 2)
        extra = [self.axis_pos(axis[:, :1]), self.axis_max(axis[:, 1:])]  # 2 × (N, E)
        if self.seq_embed is not None:
            if sequence_index is None:
                raise ValueError("this provicnet encoder has a sequence token: pass sequence_index")
            extra.append(self.seq_embed(sequence_index))
        extra_tokens = torch.stack(extra, dim=1)  # (N, 2 or 3, E)
        tokens = self.backbone.prepare_tokens(images, extra_tokens)  # (N, prefix + h·w, E)
        collect = tuple(b - 1 for b in self.cfg.map_blocks)
        tokens, collected = self.backbone.run_blocks(tokens, collect)
        normed = self.backbone.norm(tokens)
        k = self.num_prefix_tokens
        return {
            "cls": normed[:, 0],
            "patch": normed[:, k:],
            "maps": [self.backbone.norm(t[:, k:]) for t in collected],
            "grid": self.backbone.grid_size(images.shape[-2], images.shape[-1]),
        }

    def sequence_indices(self) -> torch.Tensor:
        """(C_enc,) index of each input sequence in `SEQUENCES`."""
        return torch.tensor([SEQUENCES.index(s) for s in self.input_sequences], device=self.axis_pos.weight.device)

    def forward_features(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        """(B, C_enc, D, H, W) -> {"pooled": (B, E·C_enc), "maps": 4 × (B, E·C_enc, S, H/p, W/p)}.

        `slices` (S,) restricts the computation to those slices (their neighbours are still read
        from the full volume); default all D. `pooled` is, per sequence, the mean over the S
        computed slices of the normed cls token, concatenated over sequences (sequence-major, as
        are the map channels). Maps are the patch tokens of blocks `cfg.map_blocks` through the
        backbone's final norm (as DINOv2's `get_intermediate_layers(norm=True)`)."""
        if x.ndim != 5 or x.shape[1] != len(self.input_sequences):
            raise ValueError(
                f"provicnet expects (B, {len(self.input_sequences)}, D, H, W) for {self.input_sequences}, "
                f"got {tuple(x.shape)}"
            )
        b, c, depth = x.shape[:3]
        slices = self._check_slices(slices, depth, x.device)
        s = slices.numel()
        images = rearrange(neighbour_stack(x, slices), "b c s k h w -> (b c s) k h w")  # k = 3 neighbours
        slice_index = repeat(slices.to(x.dtype), "s -> (b c s)", b=b, c=c)
        slice_count = torch.full_like(slice_index, float(depth))
        seq_index = repeat(self.sequence_indices(), "c -> (b c s)", b=b, s=s)
        out = self.encode_slices(images, slice_index, slice_count, seq_index)
        gh, gw = out["grid"]
        pooled = reduce(out["cls"], "(b c s) e -> b (c e)", "mean", b=b, c=c)  # (B, C·E)
        maps = [rearrange(m, "(b c s) (h w) e -> b (c e) s h w", b=b, c=c, h=gh, w=gw) for m in out["maps"]]
        return {"pooled": pooled, "maps": maps}

    @staticmethod
    def _check_slices(slices: torch.Tensor | None, depth: int, device: torch.device) -> torch.Tensor:
        if slices is None:
            return torch.arange(depth, device=device)
        if slices.ndim != 1 or slices.numel() == 0 or slices.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"slices must be a non-empty 1-D integer tensor of slice indices, got {slices!r}")
        if int(slices.min()) < 0 or int(slices.max()) >= depth:
            raise ValueError(f"slices {slices.tolist()} fall outside the volume's {depth} slices")
        return slices.to(device=device, dtype=torch.long)


def _override(cfg: ProViCNetConfig, overrides: dict) -> ProViCNetConfig:
    """Apply keyword overrides to the preset: fields of ProViCNetConfig or of ViTConfig."""
    top = {f.name for f in fields(ProViCNetConfig)} - {"vit"}
    vit_keys = {f.name for f in fields(ViTConfig)}
    bad = sorted(set(overrides) - top - vit_keys)
    if bad:
        raise ValueError(f"unknown provicnet options {bad}; valid: {sorted(top | vit_keys)}")
    vit = replace(cfg.vit, **{k: v for k, v in overrides.items() if k in vit_keys})
    return replace(cfg, vit=vit, **{k: v for k, v in overrides.items() if k in top})


@register_encoder("provicnet")
def provicnet(size: str = "micro", input_sequences: tuple[str, ...] = SEQUENCES, per_sequence: bool = False,
              **kw) -> Encoder:
    """ProViCNet encoder at a size preset; keyword options override preset fields
    (e.g. `sequence_token=False`, `embed_dim=64`). `per_sequence=True` builds the published
    layout, one backbone per sequence (`ProViCNetPerSequence`), instead of one shared backbone."""
    cfg = _override(provicnet_config(size), kw)
    if per_sequence:
        from taskalign.encoders.provicnet_per_sequence import ProViCNetPerSequence
        return ProViCNetPerSequence(cfg, tuple(input_sequences))
    return ProViCNetEncoder(cfg, tuple(input_sequences))
