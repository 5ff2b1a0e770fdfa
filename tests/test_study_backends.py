"""Backends and resumption: the Ray backend gives the local backend's results; a SIGKILLed study
resumes to the unit without recomputing finished runs; one study per folder at a time.

To keep CI time sane (2 cores), the end-to-end tests run a reduced smoke grid: both encoders on
one task (segmentation), one seed: 2 pretraining units, 1 specialised model, 2 cells.
"""
import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from taskalign.study.config import preset
from taskalign.study.lock import StudyLocked, study_lock
from taskalign.study.runner import run_study

TASKS = ("segmentation",)
CLI = [sys.executable, "-m", "taskalign.cli", "study", "--preset", "smoke", "--tasks", *TASKS, "--no-report"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _same_table(a: Path, b: Path, rel: float = 1e-9) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert len(rows_a) == len(rows_b) > 0
    for ra, rb in zip(rows_a, rows_b):
        assert ra.keys() == rb.keys()
        for key in ra:
            try:
                fa, fb = float(ra[key]), float(rb[key])
            except ValueError:
                assert ra[key] == rb[key], key
                continue
            assert (math.isnan(fa) and math.isnan(fb)) or fa == pytest.approx(fb, rel=rel, abs=1e-12), key


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The reduced smoke grid, uninterrupted, on the local backend."""
    out = tmp_path_factory.mktemp("local")
    run_study(preset("smoke", tasks=TASKS), out, log=lambda s: None, report=False)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_processes(temp: str) -> list[int]:
    """PIDs of the processes whose command line names `temp` (the head's own temp dir), and all
    their descendants (Ray renames some agents' command lines to ray::..., so they are found as
    children)."""
    children: dict[int, list[int]] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
            if temp.encode() in (entry / "cmdline").read_bytes():
                roots.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack += children.get(pid, [])
    return sorted(found)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head on 127.0.0.1 with 2 CPUs in its own temp dir; stopped in `finally`."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' to run the Ray backend test")
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")   # short: Ray's socket paths have a length limit
    port = _free_port()
    try:
        subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                        "--temp-dir", temp], check=True, capture_output=True, timeout=180, env=_env())
        yield f"127.0.0.1:{port}"
    finally:
        # `ray stop` would stop every Ray instance of this machine; stop only this head's processes
        pids = _ray_processes(temp)
        _signal_all(pids, signal.SIGTERM)
        time.sleep(3)
        _signal_all(pids, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ray_backend_gives_the_local_results(ray_head, local_reference, tmp_path):
    out = tmp_path / "ray"
    done = subprocess.run([*CLI, "--out", str(out), "--backend", "ray", "--address", ray_head],
                          capture_output=True, text=True, timeout=1500, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    _same_table(out / "results.csv", local_reference / "results.csv")
    # the same folder layout: every run of the local study exists, with the same files
    local_files = {p.relative_to(local_reference) for p in (local_reference / "cells").rglob("*") if p.is_file()}
    ray_files = {p.relative_to(out) for p in (out / "cells").rglob("*") if p.is_file()}
    assert ray_files == local_files
    assert not list(out.rglob(".*.tmp*"))


def _first_cell(out: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Wait for the first finished cell (its alignment.json, written after both of its runs)."""
    deadline = time.monotonic() + timeout
    while not list(out.glob("cells/*/*/n*/seed*/alignment.json")):
        assert proc.poll() is None, "the study ended before its first cell finished"
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_local_workers_give_the_in_process_results(local_reference, tmp_path):
    """Two worker processes: the same results table as one process, every unit run once."""
    run_study(preset("smoke", tasks=TASKS), tmp_path, log=lambda s: None, report=False, workers=2)
    _same_table(local_reference / "results.csv", tmp_path / "results.csv")
    metrics = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("cells/**/metrics.json"))
    assert metrics == sorted(p.relative_to(local_reference) for p in local_reference.glob("cells/**/metrics.json"))


def test_longest_units_start_first_and_workers_follow_cores(monkeypatch):
    from taskalign.study.backends import local
    from taskalign.study.units import WorkUnit

    units = [WorkUnit("specialised", task="classification", seed=0, n_train=8),
             WorkUnit("cell", encoder="a", task="classification", seed=0, n_train=8),
             WorkUnit("specialised", task="segmentation", seed=0, n_train=8),
             WorkUnit("cell", encoder="a", task="segmentation", seed=0, n_train=8)]
    order = local.longest_first(units)
    assert [(u.kind, u.task) for u in order] == [("cell", "classification"), ("cell", "segmentation"),
                                                 ("specialised", "classification"), ("specialised", "segmentation")]
    monkeypatch.setattr(local, "usable_cpus", lambda: 8)
    assert local.default_workers(preset("quick")) == 8          # one thread per run
    assert local.default_workers(preset("smoke")) == 4          # two threads per run
    monkeypatch.setattr(local, "usable_cpus", lambda: 1)
    assert local.default_workers(preset("smoke")) == 1
    with pytest.raises(ValueError, match="workers"):
        local.LocalBackend(0)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkilled_study_resumes_without_recomputing(local_reference, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([*CLI, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env())
    try:
        _first_cell(out, proc, timeout=1200)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    records = sorted(out.glob("cells/*/*/n*/seed*/metrics.json"))
    stamps = {p: os.stat(p).st_mtime_ns for p in records}
    assert records and not (out / "results.csv").exists()
    again = subprocess.run([*CLI, "--out", str(out)], capture_output=True, text=True, timeout=1500, env=_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: os.stat(p).st_mtime_ns for p in records} == stamps   # finished runs were not recomputed
    assert len(list(out.glob("cells/*/*/n*/seed*/metrics.json"))) > len(records)
    assert (out / "results.csv").read_text() == (local_reference / "results.csv").read_text()


def test_second_study_on_a_folder_in_use_is_refused(tmp_path):
    with study_lock(tmp_path):
        with pytest.raises(StudyLocked, match=f"PID {os.getpid()}"):
            with study_lock(tmp_path):
                pass
        done = subprocess.run([*CLI, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                              env=_env())
        assert done.returncode != 0 and "in use by a running study" in done.stderr
        assert not (tmp_path / "config.json").exists()      # refused before touching the folder
    with study_lock(tmp_path):                              # released on exit
        pass


def test_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from taskalign.study.lock import study_lock\n"
            f"with study_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        info = json.loads((tmp_path / ".study.lock").read_text())
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname()
        with pytest.raises(StudyLocked, match=f"PID {holder.pid}"):
            with study_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with study_lock(tmp_path):                              # the kernel released the dead holder's lock
        pass


def test_worker_files_are_written_records_last_and_inside_the_folder(tmp_path, monkeypatch):
    from taskalign import io
    from taskalign.study.backends.ray_backend import write_unit_files

    order = []
    real = io.write_bytes
    monkeypatch.setattr(io, "write_bytes", lambda path, data: (order.append(path.name), real(path, data)))
    files = {"cells/a/t/seed0/metrics.json": b"{}", "cells/a/t/seed0/curve.jsonl": b"1\n",
             "cells/a/t/seed0/features/finetuned.pt": b"x", "cells/a/t/seed0/alignment.json": b"{}"}
    write_unit_files(tmp_path, files)
    assert order[-2:] == ["alignment.json", "metrics.json"] and len(order) == 4
    assert (tmp_path / "cells/a/t/seed0/features/finetuned.pt").read_bytes() == b"x"
    with pytest.raises(ValueError, match="outside the study folder"):
        write_unit_files(tmp_path, {"../escape.txt": b"no"})
    assert not (tmp_path.parent / "escape.txt").exists()


def test_plan_shares_the_specialised_unit_and_backend_names():
    from taskalign.study.backends import create_backend
    from taskalign.study.units import plan_units

    cfg = preset("smoke", tasks=("segmentation", "synthesis"), seeds=(0, 1))
    pre, rest = plan_units(cfg, {t: (8,) for t in cfg.tasks})
    assert [u.encoder for u in pre] == list(cfg.encoders)
    specialised = [u for u in rest if u.kind == "specialised"]
    assert len(specialised) == len(set(specialised)) == 4                 # once per task, size and seed
    assert len([u for u in rest if u.kind == "cell"]) == 2 * 2 * len(cfg.encoders)
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend("dask")
    with pytest.raises(ValueError, match="only for --backend ray"):
        create_backend("local", address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="only for --backend local"):
        create_backend("ray", workers=2)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ray_backend_runs_the_transfer_matrix_as_locally(ray_head, tmp_path):
    from taskalign.experiments.transfer_matrix import matrix_preset, run_matrix

    mcfg = matrix_preset("smoke", targets=("super_resolution",))
    run_matrix(tmp_path / "local", mcfg, workers=1, log=lambda m: None)
    run_matrix(tmp_path / "ray", mcfg, backend="ray", address=ray_head, log=lambda m: None)
    _same_table(tmp_path / "ray" / "matrix.csv", tmp_path / "local" / "matrix.csv")
    local_files = {p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*")
                   if p.is_file() and p.suffix != ".lock" and p.name != "timing.json"}
    ray_files = {p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*")
                 if p.is_file() and p.suffix != ".lock" and p.name != "timing.json"}
    assert ray_files == local_files
