"""Backends that execute the study's work units (`taskalign.study.units`): `local` runs them in
this process one after the other (the default); `ray` submits each as a Ray task."""
from __future__ import annotations

from taskalign.errors import InputError
from taskalign.study.backends.local import LocalBackend, UnitFailed

BACKENDS = ("local", "ray")


def create_backend(name: str, address: str | None = None):
    """The backend called `name`; `address` is the Ray cluster's (None: a local Ray instance)."""
    if name == "local":
        if address:
            raise InputError("--address is only for --backend ray")
        return LocalBackend()
    if name == "ray":
        from taskalign.study.backends.ray_backend import RayBackend
        return RayBackend(address)
    raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "LocalBackend", "UnitFailed", "create_backend"]
