"""Atomic writes, the one way taskalign writes a file (DESIGN.md §10).

Every file goes to a temporary name in its folder and is renamed over the target, so a killed
run or a full disk never leaves a half-written file under a name a later run would trust. A
write that fails (no space, no permission) removes its temporary file and raises `WriteFailed`
naming the file and what to do; the same command resumes once the cause is fixed.

Imports nothing of the package but `errors`, so every room (train, study, report, data) writes
through it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from taskalign.errors import WriteFailed


def _advice(errno_: int | None) -> str:
    import errno

    if errno_ in (errno.ENOSPC, errno.EDQUOT):
        return "free some space and run the same command again (finished work is kept)"
    return "choose a folder you can write to (or fix its permissions) and run the same command again"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`.
    Raises `WriteFailed` (an OSError) when the folder, the write or the rename fails."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.replace(tmp, path)
    except WriteFailed:
        raise
    except OSError as err:
        raise WriteFailed(err.errno, f"cannot write {path}: {err.strerror or err}; {_advice(err.errno)}",
                          str(path)) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


# the writers look `atomic_write` up at call time, so a test can replace it to inject failures
def write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda p: p.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(Path(path), lambda p: p.write_bytes(data))
