"""The encoder contract (DESIGN.md §3) and the encoder registry.

An encoder is a backbone that owns its preprocessing and returns a fixed feature dict. Heads sit
outside it and only see `forward_features` and `feature_info`.

    features = encoder.forward_features(x)            # x: (B, C_enc, D, H, W), preprocessed
    features["pooled"]  # (B, pooled_dim)
    features["maps"]    # list of (B, C_i, D_i, H_i, W_i), one per entry of encoder.feature_info

Volumetric encoders (`spatial_dims == 3`) downsample all three axes as their `feature_info`
says. Slice-wise encoders (`spatial_dims == 2`) run slice by slice and stack their dense outputs
back into a volume: their maps keep every requested slice (stride 1 along D). `slices`, a 1-D
LongTensor of slice indices, asks a slice-wise encoder for those slices only (the fine-tuning
loop draws a few slices per volume for dense tasks, DESIGN.md §7; case-level tasks see every
slice in training as at test); volumetric encoders ignore it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from taskalign.registry import Registry


@dataclass(frozen=True)
class MapInfo:
    channels: int
    stride: tuple[int, int, int]  # (D, H, W) downsampling w.r.t. the encoder input


class Encoder(nn.Module):
    """Base class: subclasses set the attributes below in __init__ and implement the methods."""

    family: str = ""                  # e.g. "profound_conv"; names the pretraining objective
    spatial_dims: int = 3             # 3 volumetric, 2 slice-wise (2.5D)
    pooled_dim: int = 0
    feature_info: list[MapInfo]
    input_sequences: tuple[str, ...]  # sequences the task feeds (subset of SEQUENCES, that order)

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None) -> np.ndarray:
        """Raw task input (C, D, H, W) in units, channels named by `sequences` ->
        the encoder's own input (C_enc, D, H, W) float32 (normalised, absent channels handled)."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        return self.forward_features(x, slices)


EncoderFactory = Callable[..., Encoder]
ENCODERS: Registry[EncoderFactory] = Registry("encoder")


def register_encoder(name: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: `@register_encoder("my_vfm")` on a factory `f(size, input_sequences, **kw) -> Encoder`."""
    return ENCODERS.register(name)


def create_encoder(name: str, size: str = "micro", input_sequences: tuple[str, ...] = ("t2w", "dwi", "adc"),
                   weights=None, **kwargs) -> Encoder:
    """Build a registered encoder at a size preset ("micro", "tiny", "paper"), randomly
    initialised, or with the weights of local file(s) `weights` (a path; for provicnet one
    published file per sequence, e.g. "T2.pth,ADC.pth,DWI.pth"; see
    `taskalign.encoders.weights.create_with_weights`). Files are read safely and key for key."""
    if weights is not None:
        from taskalign.encoders.weights.loading import create_with_weights
        return create_with_weights(name, size, tuple(input_sequences), weights, **kwargs)
    return ENCODERS.get(name)(size=size, input_sequences=tuple(input_sequences), **kwargs)


def list_encoders() -> list[str]:
    return ENCODERS.names()
