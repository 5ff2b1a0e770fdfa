"""3D ConvNeXt-V2: the `profound_conv` encoder family (ProFound's convolutional backbone).

Paper size (ConvNeXt-V2-Tiny made volumetric, as ProFound publishes it): depths 3-3-9-3, widths
96-192-384-768, a Conv3d k4 s4 stem with a channels-first LayerNorm, downsampling
LayerNorm + Conv3d with kernel = stride 2, 2 and 1 (total stride 16), blocks of
depthwise Conv3d k7 -> LayerNorm -> Linear 4x -> GELU -> GRN -> Linear -> DropPath residual, and
a final LayerNorm of the global mean. For a (3, 64, 224, 224) input the stage maps are
(96, 16, 56, 56), (192, 8, 28, 28), (384, 4, 14, 14), (768, 4, 14, 14).

Parameter names follow the published dense checkpoints key for key: `downsample_layers.0.0.weight`
(96, 3, 4, 4, 4), `downsample_layers.i.{0,1}.*`, `stages.s.b.{dwconv,norm,pwconv1,grn,pwconv2}.*`
with GRN `gamma`/`beta` of shape (1, 1, 1, 1, 4d), and the final `norm.*`. There is no head.

The micro and tiny presets use the same code with anisotropic strides, because the study's
volumes have thick slices: stem (2, 4, 4), then (2, 2, 2), (2, 2, 2), (1, 1, 1), total (8, 16, 16).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, MapInfo, register_encoder

Stride3 = tuple[int, int, int]


@dataclass(frozen=True)
class ConvNeXtV2Config:
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    stem_stride: Stride3 = (4, 4, 4)                                   # stem kernel = stride
    downsample_strides: tuple[Stride3, ...] = ((2, 2, 2), (2, 2, 2), (1, 1, 1))  # kernel = stride
    kernel_size: int = 7                                               # depthwise conv in blocks
    drop_path_rate: float = 0.0
    in_chans: int = 3
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.dims) or len(self.downsample_strides) != len(self.dims) - 1:
            raise ValueError(
                f"ConvNeXtV2Config: need one depth per width and one downsample stride between stages; "
                f"got depths={self.depths}, dims={self.dims}, downsample_strides={self.downsample_strides}"
            )
        strides = (self.stem_stride, *self.downsample_strides)
        if any(len(s) != 3 or min(s) < 1 for s in strides):
            raise ValueError(f"ConvNeXtV2Config: strides must be (D, H, W) triples of ints >= 1, got {strides}")
        if min(self.depths) < 1 or min(self.dims) < 1:
            raise ValueError(f"ConvNeXtV2Config: depths and dims must be >= 1, got {self.depths}, {self.dims}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"ConvNeXtV2Config: kernel_size must be odd (same padding), got {self.kernel_size}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"ConvNeXtV2Config: drop_path_rate must be in [0, 1), got {self.drop_path_rate}")

    def stage_strides(self) -> list[Stride3]:
        """Cumulative (D, H, W) stride of each stage's output w.r.t. the input."""
        out, cur = [], (1, 1, 1)
        for s in (self.stem_stride, *self.downsample_strides):
            cur = tuple(c * k for c, k in zip(cur, s))
            out.append(cur)
        return out  # type: ignore[return-value]


_ANISOTROPIC = dict(stem_stride=(2, 4, 4), downsample_strides=((2, 2, 2), (2, 2, 2), (1, 1, 1)))
PRESETS: dict[str, ConvNeXtV2Config] = {
    "micro": ConvNeXtV2Config(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), **_ANISOTROPIC),
    "tiny": ConvNeXtV2Config(depths=(2, 2, 4, 2), dims=(32, 64, 128, 256), **_ANISOTROPIC),
    "paper": ConvNeXtV2Config(),
}


def zscore_nonzero_channels(image: np.ndarray, sequences: tuple[str, ...], family: str) -> np.ndarray:
    """ProFound's preprocessing: (C, D, H, W) raw image, channels named by `sequences` -> (3, D, H, W)
    float32 in order (t2w, dwi, adc): each present channel z-scored over its non-zero voxels (zeros
    stay zero, like MONAI NormalizeIntensity(nonzero=True) in ProFound's pipeline); absent channels
    are zero, as ProFound feeds missing sequences. `family` names the encoder in errors."""
    sequences = tuple(sequences)
    if image.ndim != 4 or image.shape[0] != len(sequences):
        raise ValueError(f"{family}: image must be (C, D, H, W) with C = len(sequences) = {len(sequences)}, got {image.shape}")
    unknown = [s for s in sequences if s not in SEQUENCES]
    if unknown or len(set(sequences)) != len(sequences):
        raise ValueError(f"{family}: sequences must be distinct names from {SEQUENCES}, got {sequences}")
    out = np.zeros((len(SEQUENCES),) + image.shape[1:], dtype=np.float32)
    for i, name in enumerate(SEQUENCES):
        if name not in sequences:
            continue
        channel = image[sequences.index(name)]
        nonzero = channel != 0
        if not nonzero.any():
            continue
        values = channel[nonzero].astype(np.float64)
        std = values.std()
        out[i][nonzero] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over the channel axis of (B, C, D, H, W) tensors (stem and downsampling layers)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 4, 1)  # (B, C, D, H, W) -> (B, D, H, W, C)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 4, 1, 2, 3)


class GRN(nn.Module):
    """Global Response Normalization on channels-last (B, D, H, W, C): per-channel L2 norm over
    space, divided by its mean over channels; gamma = beta = 0 makes it the identity at init."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, 1, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample, rescaling the kept ones."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """ConvNeXt-V2 block: dwconv k -> LN -> Linear 4x -> GELU -> GRN -> Linear, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, kernel_size: int = 7, eps: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 4, 1)  # (B, C, D, H, W) -> (B, D, H, W, C)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + self.drop_path(y.permute(0, 4, 1, 2, 3))


def init_convnext_weights(module: nn.Module) -> None:
    """ConvNeXt init: truncated normal (std 0.02) for conv and linear weights, zero biases."""
    if isinstance(module, (nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ConvNeXtV2(Encoder):
    """3D ConvNeXt-V2 encoder. Input (B, 3, D, H, W) with channels (T2w, DWI, ADC), each axis
    divisible by `total_stride`; see `forward_features` for the outputs."""

    family = "profound_conv"
    spatial_dims = 3

    def __init__(self, config: ConvNeXtV2Config, input_sequences: tuple[str, ...] = SEQUENCES, size: str = "custom") -> None:
        super().__init__()
        unknown = [s for s in input_sequences if s not in SEQUENCES]
        if unknown or not input_sequences:
            raise ValueError(f"profound_conv: input_sequences must be a non-empty subset of {SEQUENCES}, got {input_sequences}")
        self.config, self.size = config, size
        self.input_sequences = tuple(input_sequences)
        dims, eps = config.dims, config.layer_norm_eps
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv3d(config.in_chans, dims[0], kernel_size=config.stem_stride, stride=config.stem_stride),
            LayerNormChannelsFirst(dims[0], eps),
        )])
        for i, stride in enumerate(config.downsample_strides):
            self.downsample_layers.append(nn.Sequential(
                LayerNormChannelsFirst(dims[i], eps),
                nn.Conv3d(dims[i], dims[i + 1], kernel_size=stride, stride=stride),
            ))
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths), device="cpu").tolist()
        starts = np.cumsum((0, *config.depths))
        self.stages = nn.ModuleList([
            nn.Sequential(*[Block(dim, rates[starts[i] + j], config.kernel_size, eps) for j in range(depth)])
            for i, (dim, depth) in enumerate(zip(dims, config.depths))
        ])
        self.norm = nn.LayerNorm(dims[-1], eps=eps)
        self.pooled_dim = dims[-1]
        self.feature_info = [MapInfo(c, s) for c, s in zip(dims, config.stage_strides())]
        self.apply(init_convnext_weights)

    @property
    def total_stride(self) -> Stride3:
        """(D, H, W) stride of the last stage: input sizes must be multiples of it."""
        return self.feature_info[-1].stride

    def check_input_size(self, spatial: tuple[int, ...]) -> None:
        """Raise ValueError unless every axis of `spatial` (D, H, W) is a multiple of the total stride."""
        if len(spatial) != 3 or any(n < s or n % s for n, s in zip(spatial, self.total_stride)):
            raise ValueError(
                f"profound_conv ({self.size}): input size (D, H, W) = {tuple(spatial)} must be a positive "
                f"multiple of the total stride {self.total_stride} on every axis; crop or pad the volume to fit"
            )

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None = None) -> np.ndarray:
        """(C, D, H, W) raw image, channels named by `sequences` -> (3, D, H, W) float32 in order
        (t2w, dwi, adc); see `zscore_nonzero_channels`. `gland` is not used."""
        return zscore_nonzero_channels(image, sequences, "profound_conv")

    def forward_features(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        """x (B, 3, D, H, W) -> {"pooled": (B, C_last) LayerNorm of the global mean of the last
        stage, "maps": [(B, C_i, D/s_i, H/s_i, W/s_i) per stage]}. `slices` is ignored."""
        if x.ndim != 5 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"profound_conv: input must be (B, {self.config.in_chans}, D, H, W), got {tuple(x.shape)}")
        self.check_input_size(tuple(x.shape[2:]))
        maps = []
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
            maps.append(x)
        pooled = self.norm(x.mean(dim=(-3, -2, -1)))  # (B, C, D, H, W) -> (B, C)
        return {"pooled": pooled, "maps": maps}


def convnextv2_config(size: str, **overrides) -> ConvNeXtV2Config:
    """The preset `size` ("micro", "tiny", "paper") with fields replaced by `overrides`."""
    if size not in PRESETS:
        raise ValueError(f"profound_conv: unknown size {size!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ConvNeXtV2Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"profound_conv: unknown option(s) {unknown}; valid options are {sorted(fields)}")
    tuples = {k: tuple(tuple(s) for s in v) if k == "downsample_strides" else tuple(v)
              for k, v in overrides.items() if k in ("depths", "dims", "stem_stride", "downsample_strides")}
    return dataclasses.replace(PRESETS[size], **{**overrides, **tuples})


@register_encoder("profound_conv")
def create_profound_conv(size: str = "micro", input_sequences: tuple[str, ...] = SEQUENCES, **kw) -> ConvNeXtV2:
    """Factory for the registry: a 3D ConvNeXt-V2 at a size preset; `kw` overrides config fields
    (depths, dims, stem_stride, downsample_strides, kernel_size, drop_path_rate, ...)."""
    return ConvNeXtV2(convnextv2_config(size, **kw), input_sequences=input_sequences, size=size)
