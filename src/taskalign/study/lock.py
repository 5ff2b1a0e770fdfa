"""One study per folder at a time: an advisory lock on `DIR/.study.lock`.

The lock is `fcntl.flock` on an open file, so the kernel releases it when the holder exits for
any reason (Ctrl-C, SIGKILL, a crash): a killed study never leaves a stale lock behind. The file
also carries the holder's PID, host and start time, only to tell the second caller who holds it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from taskalign.errors import UserError

LOCK_NAME = ".study.lock"


class StudyLocked(UserError, RuntimeError):
    """Another process is running a study in the same folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return (f"PID {info.get('pid', '?')} on host {info.get('host', '?')} "
            f"(since {info.get('started', '?')})")


@contextmanager
def study_lock(study_dir: Path) -> Iterator[Path]:
    """Hold the folder's lock for the duration of the block; raise `StudyLocked` naming the
    holder when another process holds it. Works across processes on one host (and on network
    file systems whose flock is honoured across hosts)."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyLocked(f"{study_dir} is in use by a running study: {_holder(path)}. Wait for it to "
                              f"finish or stop it, or use another --out folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
