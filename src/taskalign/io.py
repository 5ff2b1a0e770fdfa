"""Project files (studies, pretraining runs, model cards): JSON, weights and tensors, every one written through `taskalign.files.atomic_write`
(a temporary name in the same folder, then a rename), so a killed run or a full disk never leaves
a half-written result that a later run would trust (DESIGN.md §10)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from taskalign import files
from taskalign.files import write_bytes, write_text

__all__ = ["write_text", "write_bytes", "write_json", "read_json", "save_weights", "load_weights", "save_tensor",
           "load_tensor"]


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def save_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """safetensors: loading it can never execute code."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    files.atomic_write(Path(path), lambda p: save_file(tensors, str(p)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def save_tensor(path: Path, tensor: torch.Tensor) -> None:
    files.atomic_write(Path(path), lambda p: torch.save(tensor.detach().cpu().contiguous(), p))


def load_tensor(path: Path) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)
