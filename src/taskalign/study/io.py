"""Atomic writes: every file goes to a temporary name in the same folder and is renamed, so a
killed run never leaves a half-written result that a later run would trust (DESIGN.md §10)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda p: p.write_text(text))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(Path(path), lambda p: p.write_bytes(data))


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
    _atomic(Path(path), lambda p: save_file(tensors, str(p)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def save_tensor(path: Path, tensor: torch.Tensor) -> None:
    _atomic(Path(path), lambda p: torch.save(tensor.detach().cpu().contiguous(), p))


def load_tensor(path: Path) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)
