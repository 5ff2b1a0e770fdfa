"""Where models run: the GPU when one is present (one per cell under Ray), else the CPU.

Kept out of the config on purpose: the device changes speed, not the study, so it must not
change the config hash that guards resumption.
"""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """`TASKALIGN_DEVICE` if set (e.g. "cpu", "cuda:1"), else cuda when available, else cpu."""
    name = os.environ.get("TASKALIGN_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
