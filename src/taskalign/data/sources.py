"""Data sources by name: each turns keyword arguments into a list of `Case`s.

    @register_source("my_folder")
    def my_folder(path: str) -> list[Case]: ...

    cases = create_source("phantom", n=8, seed=0, cohort="downstream")
"""
from __future__ import annotations

from typing import Callable

from taskalign.data.case import Case
from taskalign.registry import Registry

SourceFactory = Callable[..., list[Case]]
DATA_SOURCES: Registry[SourceFactory] = Registry("data source")


def register_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Decorator: register a function (**kwargs) -> list[Case] under `name`."""
    return DATA_SOURCES.register(name)


def create_source(name: str, **kwargs) -> list[Case]:
    """The cases of source `name` built with `kwargs`; KeyError lists the registered names."""
    return DATA_SOURCES.get(name)(**kwargs)


def list_sources() -> list[str]:
    return DATA_SOURCES.names()


@register_source("phantom")
def phantom_source(n: int, seed: int = 0, cohort: str = "downstream", shape=(16, 48, 48),
                   spacing_mm=(3.0, 1.5, 1.5)) -> list[Case]:
    """`n` phantom cases of a cohort (see taskalign.data.phantom)."""
    from taskalign.data.phantom import make_cohort

    return make_cohort(n, seed, cohort, tuple(shape), tuple(spacing_mm))


@register_source("manifest")
def manifest_source(path: str) -> list[Case]:
    """Cases of a manifest CSV, strictly (see taskalign.data.real.manifest)."""
    from taskalign.data.manifest import read_manifest

    return read_manifest(path)


@register_source("picai")
def picai_source(path: str, **options) -> list[Case]:
    """The usable cases of a PI-CAI tree (broken ones are skipped; `read_folder` lists them)."""
    from taskalign.data.real import read_folder

    return read_folder(path, "picai", **options).cases


@register_source("msd")
def msd_source(path: str, dwi: str, **options) -> list[Case]:
    """The usable cases of an MSD Task05 folder; `dwi` is "zero" or "drop" (the layout has no DWI)."""
    from taskalign.data.real import read_folder

    return read_folder(path, "msd", dwi=dwi, **options).cases
