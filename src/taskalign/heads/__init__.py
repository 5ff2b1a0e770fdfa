"""Task heads: one recipe per task kind, the same for every encoder of a dimensionality (DESIGN.md §3).

    head = build_head(task.kind, encoder, in_channels, task.out_channels)
    pred = head(encoder.forward_features(x, slices), x)   # x[:, :, slices] for slice-wise encoders

classification -> `AttentionMILHead`: gated attention-MIL over the positions of features["maps"][-1],
                  standardised per channel (`head.calibrate`), (B, out_channels) logits;
segmentation / image -> `UNETRHead` over features["maps"] and `x`, (B, out_channels, D, H, W).
"""
from __future__ import annotations

from torch import nn

from taskalign.encoders.base import Encoder
from taskalign.heads.mil import AttentionMILHead
from taskalign.heads.mlp import MLPHead
from taskalign.heads.unetr import UNETRHead, plan_levels

HEAD_KINDS: tuple[str, ...] = ("classification", "segmentation", "image")


def build_head(kind: str, encoder: Encoder, in_channels: int, out_channels: int, *,
               feature_size: int = 16, norm_name: str | tuple = "instance",
               hidden_dim: int = 128, dropout: float = 0.1) -> nn.Module:
    """The head of a task kind for `encoder`, built from its `feature_info` / `spatial_dims` only.

    in_channels: channels of the encoder's input x (C_enc), the dense heads' full-resolution skip.
    feature_size, norm_name: dense heads (width of the full-resolution level; MONAI norm name).
    hidden_dim, dropout: classification head. It reads the last map, not `pooled`: a global mean
    dilutes a lesion that fills a few positions (see `AttentionMILHead`); `MLPHead` on `pooled`
    stays available for other uses.
    """
    if kind == "classification":
        return AttentionMILHead(encoder.feature_info[-1].channels, out_channels, hidden_dim=hidden_dim,
                                dropout=dropout)
    if kind in ("segmentation", "image"):
        return UNETRHead(encoder.feature_info, encoder.spatial_dims, in_channels, out_channels,
                         feature_size=feature_size, norm_name=norm_name)
    raise ValueError(f"unknown task kind {kind!r}; heads exist for {', '.join(HEAD_KINDS)}")


__all__ = ["HEAD_KINDS", "AttentionMILHead", "MLPHead", "UNETRHead", "build_head", "plan_levels"]
