"""Preprocessing cache: a real case, read, put on the T2w grid and (optionally) onto a study grid,
is stored once and reused while its files and the preprocessing settings stay the same.

The key is a SHA-256 over the cache format version, the layout, the reader options, the
preprocessing settings and the SHA-256 of every file the case reads (its content, not its name or
time stamp), so an edited file or a changed setting gives another key and a stale entry is never
used; the key is also stored inside the entry and checked on load. Entries are `.npz` files read
with `allow_pickle=False` (arrays plus a JSON header as bytes), written to a temporary name and
renamed, so a killed run never leaves a half-written entry. Only cases that passed validation
are stored.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from taskalign import files
from taskalign.data.case import Case
from taskalign.data.real.dicom import series_files

CACHE_VERSION = 2   # 2: masks as stored ({0, v}, float) read into their classes; gzip checked
_ARRAYS = ("gland", "zones", "lesion", "body")


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


class PreprocessCache:
    """`cache.get(key)` / `cache.put(key, case)`; `cache.key(...)` builds the key (None when a
    file is missing, so a broken case is never cached)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def key(self, files: dict[str, Path], layout: str, options: dict, settings: dict) -> str | None:
        digests = {}
        for name, path in sorted(files.items()):
            path = Path(path)
            parts = series_files(path) if path.is_dir() else [path]      # a DICOM folder: every file in it
            try:
                digests[name] = [file_digest(p) for p in parts] if path.exists() else None
            except OSError:
                return None                      # unreadable: the reader reports it, nothing is cached
            if not digests[name]:
                return None
        payload = {"version": CACHE_VERSION, "layout": layout, "options": _jsonable(options),
                   "settings": _jsonable(settings), "files": digests}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str | None) -> Case | None:
        """The stored case for `key`, or None (absent, unreadable or written under another key)."""
        if key is None or not self.path(key).is_file():
            self.misses += 1
            return None
        try:
            with np.load(self.path(key), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                arrays = {n: data[n] for n in _ARRAYS if n in data.files}
                image = data["image"]
        except (OSError, ValueError, KeyError):
            self.misses += 1
            return None
        if header.get("key") != key:
            self.misses += 1
            return None
        self.hits += 1
        body = arrays.pop("body", None)
        return Case(case_id=header["case_id"], image=image, spacing_mm=tuple(header["spacing_mm"]),
                    label=header["label"], pirads=header["pirads"], meta=header["meta"],
                    body=None if body is None else body.astype(bool), **arrays)

    def put(self, key: str | None, case: Case) -> None:
        """Store `case` under `key` atomically (temporary file, then rename)."""
        if key is None:
            return
        header = {"key": key, "case_id": case.case_id, "spacing_mm": list(case.spacing_mm), "label": case.label,
                  "pirads": case.pirads, "meta": _jsonable(case.meta)}
        arrays = {"image": np.ascontiguousarray(case.image, np.float32),
                  "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        arrays.update({n: getattr(case, n) for n in _ARRAYS if getattr(case, n) is not None})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = self.path(key)
        files.write_bytes(path, buffer.getvalue())
