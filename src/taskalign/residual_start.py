"""Residual start for image tasks: every model begins at the identity (prediction = `base`).

Image tasks train a residual on the task's base (the degraded or distorted input, DESIGN.md §2;
`Sample.base`). With a randomly initialised output layer a model starts far from that base and
spends its first steps getting back to it, which at laptop budgets is most of the run. Zeroing
the final 1×1 output convolution (weights and bias) makes the first prediction exactly the base,
so every step counts toward correcting it. The same rule holds for every model of an image task
(VFM heads, scratch runs, specialised DynUNets), so the comparison stays fair; gradients still
reach every layer after the first step, since the output weights' gradient is not zero.
"""
from __future__ import annotations

from monai.networks.blocks import UnetOutBlock
from torch import nn


def zero_output_layer(model: nn.Module) -> nn.Module:
    """Zero the weights and bias of the last `UnetOutBlock` in `model` (in place); returns `model`.

    Raises ValueError when `model` has no such block (its output layer is unknown here)."""
    blocks = [m for m in model.modules() if isinstance(m, UnetOutBlock)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no UnetOutBlock output layer to zero; "
                         "image-task models must end in one (UNETRHead, DynUNet)")
    convs = [m for m in blocks[-1].modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    for conv in convs:
        nn.init.zeros_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    return model
