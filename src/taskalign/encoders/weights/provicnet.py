"""ProViCNet's published files: one plain state_dict per MRI sequence (T2, ADC, DWI).

Each file is a whole ProViCNet model: the DINOv2 ViT-S/14 with 4 registers under `backbone.`
(`cls_token`, `pos_embed` (1, 1370, 384) for a 37×37 grid, `register_tokens`, `mask_token`,
`patch_embed.proj.*`, `blocks.N.*`, `norm.*`), the slice tokens `axis_pos.*` and `axis_max.*`
(Linear(1, 384)), the segmentation head `head.*` (patch-token grid -> 256×256 logits of 4 classes)
and the patch-contrast head `CL_Head.*` (MLP 384 -> 2048 -> 2048 -> 256, L2 norm,
weight-normalised Linear 256 -> 65536 without bias: `last_layer.weight_g` / `weight_v`).
`PublishedProViCNet` has exactly those keys, so a file loads strictly; the heads are then
dropped and the backbone serves as one sequence's encoder (`ProViCNetPerSequence`).

`sequence_files` says which file is which sequence: `t2w:FILE` names it, otherwise the file name
does (`t2`, `adc`, `dwi` / `hbv`, case-insensitive).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from taskalign.data.case import SEQUENCES
from taskalign.encoders.provicnet import ProViCNetEncoder
from taskalign.encoders.provicnet_heads import ProjectionHead, SegmentationUpsampler, head_sizes
from taskalign.errors import InputError

NUM_CLASSES = 4  # 0 background, 1 gland, 2 indolent lesion, 3 csPCa (published nClass)
HEAD_PREFIXES = ("head.", "CL_Head.")
NAME_PATTERNS = {"t2w": r"t2", "adc": r"adc", "dwi": r"dwi|hbv"}


class PublishedProViCNet(nn.Module):
    """The module a published per-sequence file is the state_dict of. It shares `backbone`,
    `axis_pos` and `axis_max` with `encoder` (loading it loads them) and adds the two heads."""

    def __init__(self, encoder: ProViCNetEncoder) -> None:
        super().__init__()
        if encoder.seq_embed is not None:
            raise InputError("published ProViCNet files have no sequence token; build the encoder with "
                             "sequence_token=False")
        sizes = head_sizes(encoder.cfg.preset)
        embed = encoder.embed_dim
        self.backbone, self.axis_pos, self.axis_max = encoder.backbone, encoder.axis_pos, encoder.axis_max
        self.head = SegmentationUpsampler(embed, NUM_CLASSES, sizes.seg_widths)
        self.CL_Head = ProjectionHead(embed, sizes.cl_out_dim, sizes.cl_hidden_dim, sizes.cl_bottleneck_dim)

    def segment(self, encoder: ProViCNetEncoder, images: torch.Tensor, slice_index: torch.Tensor,
                slice_count: torch.Tensor) -> torch.Tensor:
        """The published segmentation: slices (N, 3, H, W) -> logits (N, 4, 8·H/p, 8·W/p)
        (256×256 for 448×448 slices)."""
        out = encoder.encode_slices(images, slice_index, slice_count)
        gh, gw = out["grid"]
        grid = out["patch"].transpose(1, 2).reshape(images.shape[0], -1, gh, gw)  # (N, h·w, E) -> (N, E, h, w)
        return self.head(grid, (8 * gh, 8 * gw))


def sequence_of(path: Path) -> str | None:
    """The sequence a file name names (`t2w`, `adc`, `dwi`), or None when it names none or several."""
    stem = path.name.lower()
    found = [seq for seq, pattern in NAME_PATTERNS.items() if re.search(pattern, stem)]
    return found[0] if len(found) == 1 else None


def parse_entries(spec: str | Path | list | tuple | dict) -> list[tuple[str | None, Path]]:
    """Files given as `"t2w:A.pth,adc:B.pth"`, `"A.pth"`, a list of such items or {sequence: file}
    -> [(sequence or None, path)]."""
    if isinstance(spec, dict):
        return [(str(seq), Path(file)) for seq, file in spec.items()]
    items = [str(spec)] if isinstance(spec, (str, Path)) else [str(s) for s in spec]
    entries = []
    for item in (part for text in items for part in text.split(",") if part):
        seq, sep, file = item.partition(":")
        entries.append((seq, Path(file)) if sep and seq in SEQUENCES else (None, Path(item)))
    return entries


def sequence_files(spec, input_sequences: tuple[str, ...]) -> dict[str, Path]:
    """Which published file serves which input sequence: {sequence: path} for every sequence of
    `input_sequences` (files for other sequences are not used). Raises ValueError naming the
    file or sequence that cannot be placed, and how to say it explicitly (`t2w:FILE`)."""
    entries = parse_entries(spec)
    if len(entries) == 1 and entries[0][0] is None and len(input_sequences) == 1:
        return {input_sequences[0]: entries[0][1]}
    mapping: dict[str, Path] = {}
    for seq, path in entries:
        seq = seq or sequence_of(path)
        if seq is None:
            raise InputError(f"provicnet weights: cannot tell which sequence {path} is for from its name; "
                             f"write it as t2w:{path}, adc:{path} or dwi:{path}")
        if seq in mapping:
            raise InputError(f"provicnet weights: two files for sequence {seq!r}: {mapping[seq]} and {path}")
        mapping[seq] = path
    missing = [s for s in input_sequences if s not in mapping]
    if missing:
        raise InputError(f"provicnet weights: no file for sequence(s) {missing} (given: {sorted(mapping)}); "
                         f"ProViCNet publishes one file per sequence; add {missing[0]}:FILE")
    return {s: mapping[s] for s in input_sequences}
