"""ProViCNet as published: one backbone per MRI sequence (DESIGN.md §3).

ProViCNet's authors publish one file per sequence (T2, ADC, DWI), each a whole model: a DINOv2
ViT with registers, its slice tokens and its heads. `ProViCNetPerSequence` holds one
`ProViCNetEncoder` (without the in-house sequence token) per input sequence, under
`sequences.<name>.`, and presents them as one 2.5D encoder with the same feature contract as the
shared-backbone variant: the pooled feature of a case is the concatenation of the per-sequence
pooled features, and the map channels are concatenated sequence-major.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.base import Encoder, MapInfo
from taskalign.encoders.provicnet import NUM_MAPS, ProViCNetConfig, ProViCNetEncoder, check_sequences


class ProViCNetPerSequence(Encoder):
    """One ProViCNet backbone per sequence; `sequences[name]` is a one-sequence `ProViCNetEncoder`
    whose state_dict keys are those of a published per-sequence file (minus `head.*`, `CL_Head.*`)."""

    family = "provicnet"
    spatial_dims = 2

    def __init__(self, cfg: ProViCNetConfig, input_sequences: tuple[str, ...] = SEQUENCES) -> None:
        super().__init__()
        check_sequences(input_sequences)
        self.cfg = replace(cfg, sequence_token=False)
        self.input_sequences = tuple(input_sequences)
        self.sequences = nn.ModuleDict({s: ProViCNetEncoder(self.cfg, (s,)) for s in self.input_sequences})
        first = self.sequences[self.input_sequences[0]]
        self.embed_dim, self.patch_size = first.embed_dim, first.patch_size
        n_seq = len(self.input_sequences)
        self.pooled_dim = first.pooled_dim * n_seq
        self.feature_info = [MapInfo(info.channels * n_seq, info.stride) for info in first.feature_info]

    def preprocess(self, image: np.ndarray, sequences: tuple[str, ...], gland: np.ndarray | None) -> np.ndarray:
        """(C, D, H, W) in units -> (len(input_sequences), D, H, W) float32, each channel z-scored
        inside the gland, exactly as the shared-backbone encoder does."""
        return np.concatenate([enc.preprocess(image, sequences, gland) for enc in self.sequences.values()])

    def forward_features(self, x: torch.Tensor, slices: torch.Tensor | None = None) -> dict:
        """(B, C_enc, D, H, W) -> {"pooled": (B, E·C_enc), "maps": 4 × (B, E·C_enc, S, H/p, W/p)};
        channel i of `x` goes through the backbone of `input_sequences[i]`."""
        if x.ndim != 5 or x.shape[1] != len(self.input_sequences):
            raise ValueError(
                f"provicnet (per-sequence) expects (B, {len(self.input_sequences)}, D, H, W) for "
                f"{self.input_sequences}, got {tuple(x.shape)}"
            )
        outs = [enc.forward_features(x[:, i : i + 1], slices) for i, enc in enumerate(self.sequences.values())]
        return {
            "pooled": torch.cat([o["pooled"] for o in outs], dim=1),
            "maps": [torch.cat([o["maps"][k] for o in outs], dim=1) for k in range(NUM_MAPS)],
        }
