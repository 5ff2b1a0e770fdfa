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
def uninterrupted(tmp_path_factory) -> tuple[str, list[str]]:
    """results.csv of an uninterrupted run, and the names of the files it wrote, in order."""
    mp = pytest.MonkeyPatch()
    written = _full_disk_at(0, mp)          # k = 0: never fails, only records
    try:
        results = _run(tmp_path_factory.mktemp("uninterrupted"))
    finally:
        mp.undo()
    return results, [path.name for path in written]


# the k-th write to fail: the first, the pretrained weights, a curve in mid-training, a feature
# file, the last cell's completion record, the results table
POINTS = [("config.json", 1), ("weights.safetensors", 1), ("curve.jsonl", 6), ("finetuned.pt", 1),
          ("metrics.json", 3), ("results.csv", 1)]


@pytest.mark.parametrize("name, occurrence", POINTS, ids=[f"{n}#{o}" for n, o in POINTS])
def test_full_disk_then_resume(uninterrupted, name, occurrence, tmp_path, monkeypatch):
    results, names = uninterrupted
    k = [i for i, n in enumerate(names, start=1) if n == name][occurrence - 1]
    written = _full_disk_at(k, monkeypatch)
    with pytest.raises(WriteFailed, match="No space left on device") as failure:
        _run(tmp_path)
    failed = written[k - 1]                       # (a `finally` may still write timing.json after it)
    assert failed.name == name
    assert failure.value.errno == errno.ENOSPC and str(failed) in str(failure.value)
    assert not failed.exists() or b"half" not in failed.read_bytes()   # at most its previous version
    _assert_nothing_half_written(tmp_path)
    monkeypatch.undo()                            # space is back
    assert _run(tmp_path) == results
