"""Which encoder and layout a checkpoint is, what it converts to, and which module it fills.

| format | encoder | what the file holds |
|---|---|---|
| `profound-fcmae` | `profound_conv` | ProFound's pretrained FCMAE file: sparse-convolution names, decoder keys |
| `profound-dense` | `profound_conv` | dense names: ProFound's fine-tuned files (`encoder.` + heads) or an in-house file |
| `provicnet-published` | `provicnet` | one sequence's published ProViCNet model (`backbone.`, slice tokens, `head.`, `CL_Head.`) |
| `taskalign` | `provicnet` | an in-house shared-backbone encoder (with the sequence token `seq_embed`) |
| `profound-mae` | `profound_vit` | a 3D MAE ViT file (`patch_embed.proj.weight` 5-D, `blocks.N.attn.qkv`), decoder or head keys left out |
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from taskalign.encoders.base import Encoder, create_encoder
from taskalign.encoders.weights.matching import KeyReport, compare_keys, shapes_of
from taskalign.encoders.weights.profound import (FINAL_NORM_KEYS, dense_encoder_part, is_sparse_fcmae,
                                                 sparse_to_dense)
from taskalign.encoders.weights.provicnet import PublishedProViCNet

SIZES = ("paper", "tiny", "micro")
MAE_LEFT_OUT = ("decoder", "mask_token", "head.", "fc_norm.")  # MAE decoder; fine-tuned heads  # paper first: it wins ties when a file fits no size


@dataclass(frozen=True)
class Placement:
    encoder: str  # registered encoder name
    format: str   # one of the formats of the module docstring


@dataclass
class Converted:
    """A file's state dict under the names of its layout module."""

    state: dict[str, torch.Tensor]
    optional: frozenset[str] = frozenset()        # keys the file may lack (they keep their init)
    notes: list[str] = field(default_factory=list)


def identify(state: dict[str, torch.Tensor]) -> Placement | None:
    """The encoder and format a state dict's key names say it is, or None."""
    keys = set(state)
    if is_sparse_fcmae(keys) and any(k.startswith("encoder.") for k in keys):
        return Placement("profound_conv", "profound-fcmae")
    if "downsample_layers.0.0.weight" in {k.removeprefix("encoder.") for k in keys}:
        return Placement("profound_conv", "profound-dense")
    patch = state.get("patch_embed.proj.weight")
    if patch is not None and patch.ndim == 5 and "blocks.0.attn.qkv.weight" in keys:
        return Placement("profound_vit", "profound-mae")
    if "backbone.pos_embed" in keys and "axis_pos.weight" in keys:
        return Placement("provicnet", "taskalign" if "seq_embed.weight" in keys else "provicnet-published")
    return None


def convert(fmt: str, state: dict[str, torch.Tensor]) -> Converted:
    """A file's state dict -> the state dict of its layout module (`layout_module`)."""
    if fmt == "profound-fcmae":
        dense, dropped = sparse_to_dense(state)
        return Converted(dense, FINAL_NORM_KEYS, [f"left out {len(dropped)} FCMAE pretraining-head keys "
                                                  f"(decoder, mask_token, proj, pred)"])
    if fmt == "profound-dense":
        encoder, left_out = dense_encoder_part(state)
        heads = sorted({k.split(".")[0] if not k.startswith("encoder.") else "encoder.head" for k in left_out})
        notes = [f"left out {len(left_out)} task-head keys ({', '.join(heads)})"] if left_out else []
        return Converted(encoder, FINAL_NORM_KEYS, notes)
    if fmt == "profound-mae":
        left_out = [k for k in state if k.startswith(MAE_LEFT_OUT)]
        notes = [f"left out {len(left_out)} MAE decoder / task-head keys "
                 f"({', '.join(sorted({k.split('.')[0] for k in left_out}))})"] if left_out else []
        return Converted({k: v for k, v in state.items() if k not in left_out}, FINAL_NORM_KEYS, notes)
    if fmt in ("provicnet-published", "taskalign"):
        return Converted(dict(state))
    raise ValueError(f"unknown checkpoint format {fmt!r}")


def build_encoder(placement: Placement, size: str, input_sequences: tuple[str, ...] = ("t2w",)) -> Encoder:
    """A fresh encoder of the architecture a file of this format is loaded into (for a published
    ProViCNet file: one sequence's encoder, without the sequence token)."""
    if placement.format == "provicnet-published":
        return create_encoder("provicnet", size=size, input_sequences=input_sequences[:1], sequence_token=False)
    return create_encoder(placement.encoder, size=size, input_sequences=input_sequences)


def layout_module(fmt: str, encoder: Encoder) -> nn.Module:
    """The module whose state_dict keys are the converted file's keys: the encoder itself, or for a
    published ProViCNet file the encoder's parts plus the published heads."""
    return PublishedProViCNet(encoder) if fmt == "provicnet-published" else encoder


def expected_shapes(placement: Placement, size: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} a file of `placement` at `size` must have (built on the meta device: no memory)."""
    with torch.device("meta"):
        return shapes_of(layout_module(placement.format, build_encoder(placement, size)))


def best_size(placement: Placement, converted: Converted) -> tuple[str, KeyReport]:
    """The size preset the converted file fits (or comes closest to) and its key report."""
    best: tuple[str, KeyReport] | None = None
    for size in SIZES:
        report = compare_keys(expected_shapes(placement, size), converted.state, converted.optional)
        if report.ok:
            return size, report
        if best is None or report.problems() < best[1].problems():
            best = (size, report)
    assert best is not None
    return best
