"""Backends that execute the study's work units (`taskalign.study.units`): `local` runs them on
this machine, in this process or in worker processes (the default); `ray` submits each as a Ray
task."""
from __future__ import annotations

from taskalign.errors import InputError
from taskalign.study.backends.local import LocalBackend, UnitFailed, default_workers

BACKENDS = ("local", "ray")


def create_backend(name: str, address: str | None = None, workers: int = 1):
    """The backend called `name`; `address` is the Ray cluster's (None: a local Ray instance),
    `workers` the local backend's worker processes (1: this process)."""
    if name == "local":
        if address:
            raise InputError("--address is only for --backend ray")
        return LocalBackend(workers)
    if workers != 1:
        raise InputError("--workers is only for --backend local (Ray places units itself)")
    if name == "ray":
        from taskalign.study.backends.ray_backend import RayBackend
        return RayBackend(address)
    raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "LocalBackend", "UnitFailed", "create_backend", "default_workers"]
