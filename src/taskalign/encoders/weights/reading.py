"""Reading checkpoint files without ever executing code from them.

Two readers only: safetensors (`.safetensors`), and `torch.load(..., weights_only=True)` for
everything else (`.pth`, `.pt`, `.bin`, ...), whose unpickler rebuilds tensors, containers and
plain numbers but refuses any other Python object. A file that needs more (an `argparse.Namespace`
of training arguments, a model object, code planted to run when unpickled) is refused with
`CheckpointRefused`, whose message says how to convert it once, somewhere trusted.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from taskalign.errors import InputError, MissingFile

CONTAINER_KEYS = ("model", "state_dict")  # ProFound/MAE files: {"model": ...}; Lightning-style: {"state_dict": ...}


class CheckpointRefused(InputError):
    """The file cannot be read without running pickled code (or is not a checkpoint at all)."""


def conversion_hint(path: Path) -> str:
    """How to turn a pickled file into one taskalign reads (to run once, in a trusted environment)."""
    return (
        "If you trust the file, convert it once to plain tensors in a separate Python session:\n"
        f"  python -c \"import torch; ck = torch.load('{path}', weights_only=False); "
        "sd = ck.get('model', ck) if isinstance(ck, dict) else ck.state_dict(); "
        "torch.save({'model': {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}}, 'converted.pth')\"\n"
        "or save that dict with safetensors.torch.save_file(sd, 'converted.safetensors'); "
        "then give taskalign the converted file."
    )


def refuse_unrecognised(path: Path) -> None:
    """Raise `CheckpointRefused` when the first bytes of `path` are neither a torch.save archive
    (zip), a pickle stream nor a safetensors header; cheap, reads 9 bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"):   # u64 header length, then JSON
        return
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither a torch.save zip archive nor a pickle stream
        raise CheckpointRefused(f"{path}: not a readable PyTorch or safetensors checkpoint "
                                f"(it starts with {head[:2]!r}; torch.save files start with b'PK')")


def _torch_load(path: Path) -> Any:
    refuse_unrecognised(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        detail = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise CheckpointRefused(
            f"{path}: refused: reading it would need Python's pickle to rebuild objects other than tensors "
            f"({detail}), and taskalign never executes pickled code (torch.load with weights_only=True).\n"
            + conversion_hint(path)
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointRefused(f"{path}: not a readable PyTorch or safetensors checkpoint ({err})") from None


def read_file(path: str | Path) -> Any:
    """The object stored in `path`: a dict of tensors for safetensors, else what torch.load
    (weights_only=True) returns. Raises FileNotFoundError or CheckpointRefused."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointRefused(f"{path}: not a readable safetensors file ({err})") from None
    return _torch_load(path)


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} state dict inside a checkpoint object: the value of its `model` (or
    `state_dict`) key when it has one, else the object itself. Entries beside the state dict
    (epoch, optimizer, ...) are ignored; a non-tensor inside it is an error naming the key."""
    if not isinstance(obj, dict):
        raise CheckpointRefused(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    for key in CONTAINER_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointRefused(
            f"{path}: expected a state dict of tensors (optionally under 'model'), but {len(bad)} entries are not "
            f"tensors: {bad[:8]}{' ...' if len(bad) > 8 else ''}"
        )
    return {str(k): v for k, v in obj.items()}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Safely read `path` and return its flat state dict (see `read_file`, `unwrap_state_dict`)."""
    return unwrap_state_dict(read_file(path), Path(path))
