"""Write errors lose nothing (DESIGN.md §10): a full disk at any point of a study leaves no file
that a later run would trust, raises `WriteFailed` naming the file, and the same call resumes to
the results of an uninterrupted run once space is back."""
import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from taskalign import files
from taskalign.errors import WriteFailed
from taskalign.study.config import preset
from taskalign.study.runner import run_study

CFG = preset("smoke", tasks=("segmentation",), encoders=("profound_conv",))


def _run(out: Path) -> str:
    return run_study(CFG, out, log=lambda s: None, report=False).read_text()


def _full_disk_at(k: int, monkeypatch) -> list[Path]:
    """From now on the k-th atomic write (1-based) writes part of its file, then fails as a full
    disk would; returns the list that collects the paths written."""
    real, written = files.atomic_write, []

    def failing(path, write):
        written.append(Path(path))
        if len(written) != k:
            return real(path, write)

        def half_then_enospc(tmp: Path) -> None:
            tmp.write_bytes(b"{\"half\": ")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, half_then_enospc)

    monkeypatch.setattr(files, "atomic_write", failing)
    return written


def _assert_nothing_half_written(out: Path) -> None:
    """No temporary file is left, and every file a later run reads is whole."""
    for path in out.rglob("*"):
        if not path.is_file() or path.name == ".study.lock":
            continue
        assert not path.name.endswith(".tmp"), f"temporary file left behind: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".safetensors":
            load_file(str(path))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[str, int]:
    """results.csv of an uninterrupted run, and how many files it wrote."""
    mp = pytest.MonkeyPatch()
    written = _full_disk_at(0, mp)          # k = 0: never fails, only counts
    try:
        results = _run(tmp_path_factory.mktemp("uninterrupted"))
    finally:
        mp.undo()
    return results, len(written)


@pytest.mark.parametrize("fraction", [0.0, 0.35, 0.7, 1.0])
def test_full_disk_then_resume(uninterrupted, fraction, tmp_path, monkeypatch):
    results, n_writes = uninterrupted
    k = 1 + round(fraction * (n_writes - 1))     # the first write, the last (results.csv), and between
    written = _full_disk_at(k, monkeypatch)
    with pytest.raises(WriteFailed, match="No space left on device") as failure:
        _run(tmp_path)
    assert failure.value.errno == errno.ENOSPC and str(written[-1]) in str(failure.value)
    assert not written[-1].exists() or b"half" not in written[-1].read_bytes()   # at most its previous version
    _assert_nothing_half_written(tmp_path)
    monkeypatch.undo()                            # space is back
    assert _run(tmp_path) == results
