"""Data sources by name: each turns keyword arguments into a list of `Case`s.

    @register_source("my_folder")
    def my_folder(path: str, shape=None, spacing_mm=None) -> list[Case]: ...

    cases = create_source("phantom", n=8, seed=0, cohort="downstream")

A study's downstream cases come from the source named by `DataConfig.source`, whatever it is
(phantom, a real folder, yours): `read_source` calls it with the arguments of `STUDY_ARGUMENTS`
that its signature names, and takes either a list of cases or a `SourceRead` (cases, the
excluded ones with their reason, notes). The source should return cases of `shape` voxels at
`spacing_mm` (the study's grid); the study splits them by the data seed.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from taskalign.data.case import Case
from taskalign.errors import InputError
from taskalign.registry import Registry

# what a study offers a source (DataConfig's fields); a source receives those its signature names
STUDY_ARGUMENTS = ("n", "seed", "cohort", "shape", "spacing_mm", "path", "layout", "dwi", "cache_dir", "columns",
                   "label_rule", "series")


@dataclass
class SourceRead:
    """What a source gave a study: usable cases, excluded ones ({case, reason, ...}), notes."""

    cases: list[Case]
    excluded: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


SourceFactory = Callable[..., "list[Case] | SourceRead"]
DATA_SOURCES: Registry[SourceFactory] = Registry("data source")


def register_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Decorator: register a function (**kwargs) -> list[Case] under `name`."""
    return DATA_SOURCES.register(name)


def create_source(name: str, **kwargs) -> list[Case]:
    """The cases of source `name` built with `kwargs`; KeyError lists the registered names."""
    return DATA_SOURCES.get(name)(**kwargs)


def list_sources() -> list[str]:
    return DATA_SOURCES.names()


def read_source(name: str, offered: dict[str, Any]) -> SourceRead:
    """The study's call of source `name`: the `offered` arguments (keys of `STUDY_ARGUMENTS`)
    that its signature names, the result as a `SourceRead`. UnknownName lists the sources."""
    factory = DATA_SOURCES.get(name)
    params = inspect.signature(factory).parameters
    out = factory(**{k: v for k, v in offered.items() if k in params})
    return out if isinstance(out, SourceRead) else SourceRead(list(out))


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


@register_source("real")
def real_folder_source(path: str, layout: str | None = None, dwi: str | None = None, shape=None,
                       spacing_mm=None, cache_dir: str | None = None, columns: dict[str, str] | None = None,
                       label_rule: str | None = None, series: dict[str, str] | None = None) -> SourceRead:
    """The usable cases of a real folder in any layout (`taskalign.data.real.LAYOUTS`; default
    detected), each resampled onto `shape` voxels at `spacing_mm` around the gland (or the image
    centre), cached in `cache_dir`; broken cases (unreadable files included: every `.gz` is
    inflated whole) are excluded with their reason; a folder with no usable case is one error.
    `columns`, `label_rule`, `series`: the reader options of `taskalign data check`."""
    from taskalign.data.real import detect_layout, read_folder
    from taskalign.data.real.cache import PreprocessCache
    from taskalign.data.real.check import no_usable_case
    from taskalign.data.real.folder import reader_options

    if not path:
        raise InputError("a real-data study needs DataConfig.path (taskalign study --data PATH)")
    layout = layout or detect_layout(path)
    cache = PreprocessCache(cache_dir) if cache_dir else None
    options = reader_options(layout, path, dwi=dwi, columns=columns or None, label_rule=label_rule,
                             series=series or None)
    result = read_folder(path, layout, crop=None if shape is None else tuple(shape),
                         spacing_mm=None if spacing_mm is None else tuple(spacing_mm), cache=cache,
                         check_gzip="crc", **options)
    if not result.cases:
        raise InputError(no_usable_case(result) + f"; run `taskalign data check {path}`")
    return SourceRead(result.cases, result.excluded, [f"downstream cases from {path} ({result.layout})"] + result.notes)
