"""Stage 2 of ProViCNet pretraining: patch-level contrastive learning with lesion masks.
(`taskalign.pretrain.provicnet_recipe` runs stage 1, then this.)

On 2.5D slices of the cases that carry a `lesion` mask:

    segmentation   SegmentationUpsampler on the final patch tokens, DiceCE over 4 classes
                   (0 background, 1 gland without lesion, 2 ISUP-1 lesion, 3 csPCa = lesion >= 2)
    pairs          per patch cell, the fraction of csPCa pixels f; anchors have f >= anchor_min,
                   positives are anchor neighbours (3×3) with f >= anchor_min, negatives anchor
                   neighbours with f <= normal_max; positives and negatives are subsampled to the
                   same count (at most `max_pairs` each), as in the published code
    contrast       on `CL_Head` outputs of the patch tokens: positive 1 - cos(a, p),
                   negative max(0, cos(a, n) - margin), margin 0.5; mean over pairs
    loss           DiceCE + 0.05 × contrast

The published thresholds are 62 and 2 cancer pixels of the 64 label pixels of a patch cell, with
positives among the anchor's neighbours (paper preset). A lesion rarely fills, let alone spans two
of, the 12-20 mm patch cells of the CPU presets: there an anchor needs a quarter of its cell and
its positives are the batch's other anchor cells (`positive_scope="batch"`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from monai.losses import DiceCELoss
from torch import nn

from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders.provicnet import ProViCNetEncoder
from taskalign.encoders.provicnet_heads import ProjectionHead, SegmentationUpsampler, head_sizes
from taskalign.optim import decay_groups
from taskalign.pretrain.cohort import LazySequence
from taskalign.pretrain.loop import Objective, StageSchedule
from taskalign.pretrain.slices import SliceBank, SliceBatch

NUM_CLASSES = 4
CANCER_CLASS = 3


@dataclass(frozen=True)
class PatchContrastConfig:
    contrast_weight: float = 0.05
    margin: float = 0.5
    anchor_min_fraction: float = 0.25
    normal_max_fraction: float = 2 / 64
    max_pairs: int = 30
    positive_scope: str = "batch"     # "neighbourhood" as published (paper preset)
    lesion_slice_prob: float = 0.75   # share of slices drawn among those with csPCa
    seg_widths: tuple[int, int] = (64, 32)
    cl_out_dim: int = 256
    cl_hidden_dim: int = 256
    cl_bottleneck_dim: int = 64
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    slices_per_volume: int = 4
    backbone_lr_scale: float = 0.1    # the backbone learns at this fraction of the heads' rate (stage 2
                                      # at the heads' rate collapsed the pooled feature: spread 0.27 -> 0.02)


def patch_contrast_config(preset: str) -> PatchContrastConfig:
    """Stage-2 settings per encoder size (paper: published thresholds and CL_Head 384-2048-256-65536)."""
    sizes = dataclasses.asdict(head_sizes(preset))
    if preset == "paper":
        return PatchContrastConfig(anchor_min_fraction=62 / 64, positive_scope="neighbourhood", **sizes)
    return PatchContrastConfig(**sizes)


def lesion_classes(case: Case) -> np.ndarray:
    """(D, H, W) int64 classes: 0 background, 1 gland, 2 ISUP-1 lesion, 3 csPCa (lesion >= 2)."""
    if case.lesion is None:
        raise ValueError(f"case {case.case_id} has no lesion mask; stage 2 needs one")
    classes = np.zeros(case.shape, dtype=np.int64)
    if case.gland is not None:
        classes[case.gland > 0] = 1
    classes[case.lesion == 1] = 2
    classes[case.lesion >= 2] = CANCER_CLASS
    return classes


def labelled_bank(encoder: ProViCNetEncoder, cases: Sequence[Case]) -> SliceBank:
    """Volumes and lesion classes of `cases`, each made on its first draw."""
    volumes = LazySequence(len(cases), lambda i: torch.from_numpy(
        encoder.preprocess(cases[i].image, SEQUENCES, cases[i].gland)))
    labels = LazySequence(len(cases), lambda i: torch.from_numpy(lesion_classes(cases[i])))
    return SliceBank(volumes, encoder.sequence_indices(), labels)


def contrastive_pairs(cancer_fraction: torch.Tensor, anchor_min: float, normal_max: float, max_pairs: int,
                      generator: torch.Generator, positive_scope: str = "neighbourhood"
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cancer_fraction (N, gh, gw) -> anchor cells (P, 3), compared cells (P, 3) as (n, y, x), and
    is_positive (P,) bool; P = 2 · min(#positive, #negative, max_pairs) (0 when either is absent).

    Anchors: f >= anchor_min. Negatives: the anchors' 3×3 neighbours with f <= normal_max.
    Positives: the anchors' 3×3 neighbours with f >= anchor_min (`positive_scope="neighbourhood"`,
    published), or every other anchor cell of the batch (`"batch"`, for coarse patch grids where a
    lesion rarely spans two cells)."""
    if positive_scope not in ("neighbourhood", "batch"):
        raise ValueError(f"positive_scope must be 'neighbourhood' or 'batch', got {positive_scope!r}")
    frac = cancer_fraction.detach().cpu()
    _, gh, gw = frac.shape
    anchors = torch.nonzero(frac >= anchor_min)  # (A, 3)
    offsets = torch.tensor([[0, dy, dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])
    anchor = anchors.repeat_interleave(len(offsets), dim=0)  # (8A, 3)
    other = anchor + offsets.repeat(len(anchors), 1)
    inside = (other[:, 1] >= 0) & (other[:, 1] < gh) & (other[:, 2] >= 0) & (other[:, 2] < gw)
    anchor, other = anchor[inside], other[inside]
    value = frac[other[:, 0], other[:, 1], other[:, 2]]
    neg_anchor, neg_other = anchor[value <= normal_max], other[value <= normal_max]
    if positive_scope == "neighbourhood":
        pos_anchor, pos_other = anchor[value >= anchor_min], other[value >= anchor_min]
    else:
        i, j = torch.nonzero(~torch.eye(len(anchors), dtype=torch.bool), as_tuple=True)
        pos_anchor, pos_other = anchors[i], anchors[j]
    k = min(len(pos_anchor), len(neg_anchor), max_pairs)
    pos = torch.randperm(len(pos_anchor), generator=generator)[:k]
    neg = torch.randperm(len(neg_anchor), generator=generator)[:k]
    return (torch.cat([pos_anchor[pos], neg_anchor[neg]]), torch.cat([pos_other[pos], neg_other[neg]]),
            torch.arange(2 * k) < k)


def patch_contrastive_loss(anchor: torch.Tensor, other: torch.Tensor, is_positive: torch.Tensor,
                           margin: float = 0.5) -> torch.Tensor:
    """(P, K), (P, K), (P,) bool -> mean over pairs of 1 - cos(a, o) (positive pairs) or
    max(0, cos(a, o) - margin) (negative pairs); 0 when P = 0. Computed in float32."""
    if anchor.shape[0] == 0:
        return anchor.float().sum() * 0.0
    cos = F.cosine_similarity(anchor.float(), other.float(), dim=-1)
    return torch.where(is_positive.to(cos.device), 1.0 - cos, F.relu(cos - margin)).mean()


def _flip_half(batch: SliceBatch, generator: torch.Generator) -> SliceBatch:
    """Mirror a random half of the slices left-right, images and labels alike."""
    flip = (torch.rand(batch.images.shape[0], generator=generator) < 0.5).view(-1, 1, 1)
    images = torch.where(flip[:, None], batch.images.flip(-1), batch.images)
    labels = torch.where(flip, batch.labels.flip(-1), batch.labels)
    return SliceBatch(images, batch.slice_index, batch.slice_count, batch.sequence_index, labels)


class PatchContrastModel(nn.Module):
    """Encoder + `head` (segmentation upsampler) + `CL_Head` (published attribute names)."""

    def __init__(self, encoder: ProViCNetEncoder, cfg: PatchContrastConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = SegmentationUpsampler(encoder.embed_dim, NUM_CLASSES, cfg.seg_widths)
        self.CL_Head = ProjectionHead(encoder.embed_dim, cfg.cl_out_dim, cfg.cl_hidden_dim, cfg.cl_bottleneck_dim)

    def forward(self, batch: SliceBatch) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """-> segmentation logits (N, 4, H, W), patch tokens (N, h·w, E), grid (h, w)."""
        out = self.encoder.encode_slices(batch.images, batch.slice_index, batch.slice_count, batch.sequence_index)
        gh, gw = out["grid"]
        grid = rearrange(out["patch"], "n (h w) e -> n e h w", h=gh, w=gw)
        return self.head(grid, tuple(batch.images.shape[-2:])), out["patch"], (gh, gw)


def contrast_term(model: PatchContrastModel, patches: torch.Tensor, grid: tuple[int, int], labels: torch.Tensor,
                  cfg: PatchContrastConfig, generator: torch.Generator) -> torch.Tensor:
    """Patch contrastive loss of one batch: pairs from the csPCa fraction per patch cell."""
    p = labels.shape[-1] // grid[1]
    fraction = F.avg_pool2d((labels == CANCER_CLASS).float()[:, None], kernel_size=p)[:, 0]  # (N, gh, gw)
    anchor, other, positive = contrastive_pairs(fraction, cfg.anchor_min_fraction, cfg.normal_max_fraction,
                                                cfg.max_pairs, generator, cfg.positive_scope)
    token = lambda cells: patches[cells[:, 0], cells[:, 1] * grid[1] + cells[:, 2]]  # noqa: E731 - (P, E)
    anchor, other = anchor.to(patches.device), other.to(patches.device)
    return patch_contrastive_loss(model.CL_Head(token(anchor)), model.CL_Head(token(other)), positive, cfg.margin)


class PatchContrastObjective(Objective):
    """DiceCE of the segmentation head + `contrast_weight` × patch contrast, on labelled slices;
    the backbone learns at `backbone_lr_scale` × the heads' rate."""

    where = "provicnet pretraining, stage 2 (patch contrast)"

    def __init__(self, encoder: ProViCNetEncoder, bank: SliceBank, batch_size: int, cfg: PatchContrastConfig,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.model = PatchContrastModel(encoder, cfg).to(next(encoder.parameters()).device)
        self.bank, self.batch_size, self.cfg, self.generator = bank, batch_size, cfg, generator
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)

    def param_groups(self, weight_decay: float) -> list[dict]:
        heads = nn.ModuleList([self.model.head, self.model.CL_Head])
        return (decay_groups(self.model.encoder, weight_decay, lr_scale=self.cfg.backbone_lr_scale)
                + decay_groups(heads, weight_decay, lr_scale=1.0))

    def loss(self, step: int, total_steps: int) -> torch.Tensor:
        cfg = self.cfg
        batch = _flip_half(self.bank.draw(self.batch_size, cfg.slices_per_volume, self.generator, cfg.lesion_slice_prob),
                           self.generator)
        batch = batch.to(next(self.model.parameters()).device)
        logits, patches, grid = self.model(batch)
        seg = self.dice_ce(logits.float(), batch.labels[:, None])
        return seg + cfg.contrast_weight * contrast_term(self.model, patches, grid, batch.labels, cfg, self.generator)


def patch_contrast_schedule(cfg: PatchContrastConfig, steps: int, lr: float) -> StageSchedule:
    return StageSchedule(steps, lr, int(cfg.warmup_fraction * steps), min_lr_ratio=0.01, weight_decay=cfg.weight_decay)
