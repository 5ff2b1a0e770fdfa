"""Classification head: an MLP on the encoder's pooled feature (DESIGN.md §3, "Heads")."""
from __future__ import annotations

import torch
from torch import nn


class MLPHead(nn.Module):
    """`forward(features, x=None) -> (B, out_channels)` logits from features["pooled"] (B, pooled_dim).

    LayerNorm -> Linear(pooled_dim, hidden_dim) -> GELU -> Dropout -> Linear(hidden_dim, out_channels).
    The LayerNorm puts encoders whose pooled features differ in scale on one footing.
    """

    def __init__(self, pooled_dim: int, out_channels: int, hidden_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        if pooled_dim < 1:
            raise ValueError(f"pooled_dim must be >= 1 (the encoder's pooled_dim), got {pooled_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.pooled_dim = pooled_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(pooled_dim),
            nn.Linear(pooled_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_channels),
        )

    def forward(self, features: dict, x: torch.Tensor | None = None) -> torch.Tensor:
        pooled = features["pooled"]
        if pooled.ndim != 2 or pooled.shape[1] != self.pooled_dim:
            raise ValueError(f"pooled feature has shape {tuple(pooled.shape)}, the head expects (B, {self.pooled_dim})")
        return self.mlp(pooled)
