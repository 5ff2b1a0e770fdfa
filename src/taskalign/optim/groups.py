"""The one weight-decay rule: decay matrices and kernels; never biases, norms, LayerScale, GRN,
tokens or position embeddings (1-D parameters, or a leading axis of 1)."""
from __future__ import annotations

from torch import nn


def is_decayed(name: str, p: nn.Parameter) -> bool:
    return p.ndim >= 2 and p.shape[0] != 1 and not name.endswith(".bias")


def decay_groups(module: nn.Module, weight_decay: float, **extra) -> list[dict]:
    """Two AdamW groups of `module`'s trainable parameters (decayed, not decayed); `extra` keys
    (e.g. `lr_scale`) are copied into both."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (decay if is_decayed(name, p) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, **extra},
              {"params": no_decay, "weight_decay": 0.0, **extra}]
    return [g for g in groups if g["params"]]
