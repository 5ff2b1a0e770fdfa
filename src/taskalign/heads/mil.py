"""Classification head: gated attention-MIL over the positions of the encoder's last feature map
(Ilse, Tomczak & Welling 2018, "Attention-based deep multiple instance learning", eq. 9).

A case is a bag of positions: every (slice, row, column) cell of the last map, for volumetric
and slice-wise encoders alike (slice-wise maps are stacked back into a volume, stride 1 along D).
A csPCa lesion fills a few of them; a global mean dilutes it by the bag size, attention can find it.
"""
from __future__ import annotations

from typing import Iterable

import torch
from einops import rearrange
from torch import nn


class AttentionMILHead(nn.Module):
    """`forward(features, x=None) -> (B, out_channels)` logits from features["maps"][map_index].

        tokens   (B, C, D', H', W') -> (B, N, C), N = D'·H'·W' positions
        standard (t - mean) / std per channel, mean and std fixed buffers (`calibrate`)
        embed    h = Dropout(GELU(Linear(C, hidden_dim)(t)))                          (B, N, hidden)
        attend   a = softmax_N(wᵀ (tanh(V h) ⊙ sigmoid(U h)))                         (B, N)
        pool     z = Σ_n a_n h_n                                                      (B, hidden)
        classify Linear(hidden_dim, out_channels)(z)                                  (B, out)

    Why a fixed per-feature standardisation and not a LayerNorm: a LayerNorm normalises each
    vector across its own channels, so what it keeps is the direction every case shares; the
    features of a pretrained encoder differ from case to case by a small fraction of their norm
    (ProViCNet micro's pooled feature: σ/‖f‖ ≈ 0.016), and after a LayerNorm the logits start
    nearly equal for all cases and learn slowly. Subtracting each channel's mean over the
    training positions and dividing by its std turns that spread into unit-variance inputs, as a
    standardised linear probe does. The statistics are computed once, from the *start* encoder
    (pretrained or random) on the training cases, and then kept fixed: batch statistics are no
    option at 2–4 volumes per step, and fixed buffers keep evaluation deterministic. The Linear
    that follows is the learnable affine. Before `calibrate` the buffers are the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_dim: int = 128, attention_dim: int = 64,
                 dropout: float = 0.1, map_index: int = -1, eps: float = 1e-6) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or hidden_dim < 1 or attention_dim < 1:
            raise ValueError(f"channels and widths must be >= 1, got in_channels={in_channels}, "
                             f"out_channels={out_channels}, hidden_dim={hidden_dim}, attention_dim={attention_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.map_index, self.eps = in_channels, map_index, eps
        self.register_buffer("feature_mean", torch.zeros(in_channels))
        self.register_buffer("feature_std", torch.ones(in_channels))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self.embed = nn.Sequential(nn.Linear(in_channels, hidden_dim), nn.GELU(), nn.Dropout(dropout))
        self.attention_v = nn.Linear(hidden_dim, attention_dim)   # V: the tanh branch
        self.attention_u = nn.Linear(hidden_dim, attention_dim)   # U: the sigmoid gate
        self.attention_w = nn.Linear(attention_dim, 1)            # w
        self.classifier = nn.Linear(hidden_dim, out_channels)

    def tokens(self, features: dict) -> torch.Tensor:
        """The bag of the map this head reads: (B, C, D', H', W') -> (B, N, C), not standardised."""
        fmap = features["maps"][self.map_index]
        if fmap.ndim != 5 or fmap.shape[1] != self.in_channels:
            raise ValueError(f"feature map {self.map_index} has shape {tuple(fmap.shape)}, the head expects "
                             f"(B, {self.in_channels}, D, H, W)")
        return rearrange(fmap, "b c d h w -> b (d h w) c")

    @torch.no_grad()
    def calibrate(self, features: Iterable[dict]) -> None:
        """Set the standardisation from feature dicts of the training cases (any batching):
        per channel, the mean and std over every position of every case, summed in float64 so
        the result does not depend on how the cases were batched beyond rounding."""
        count, total, total_sq = 0, torch.zeros(self.in_channels, dtype=torch.float64), None
        for f in features:
            t = self.tokens(f).detach().to("cpu", torch.float64).reshape(-1, self.in_channels)  # (B·N, C)
            count += t.shape[0]
            total = total + t.sum(0)
            total_sq = t.square().sum(0) if total_sq is None else total_sq + t.square().sum(0)
        if count < 2:
            raise ValueError("calibrate needs at least two positions of training features; got "
                             f"{count} (is the training split empty?)")
        mean = total / count
        var = (total_sq / count - mean.square()).clamp_min(0.0) * count / (count - 1)
        self.feature_mean.copy_(mean.to(self.feature_mean))
        self.feature_std.copy_(var.sqrt().clamp_min(self.eps).to(self.feature_std))
        self.calibrated.fill_(True)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        """Gated attention weights (B, N, hidden) -> (B, N), each row summing to 1."""
        score = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        return torch.softmax(score.squeeze(-1).float(), dim=-1).to(h.dtype)

    def forward(self, features: dict, x: torch.Tensor | None = None) -> torch.Tensor:
        t = (self.tokens(features) - self.feature_mean) / self.feature_std   # (B, N, C)
        h = self.embed(t)                                                     # (B, N, hidden)
        a = self.attention(h)                                                 # (B, N)
        z = torch.einsum("bn,bnk->bk", a, h)                                  # (B, hidden)
        return self.classifier(z)

