"""Study configuration: frozen dataclasses and the size presets (DESIGN.md §7, §8).

Presets are small functions returning a `StudyConfig`; the CLI may override encoders, tasks and
seeds. The resolved config is written to `config.json` before any work starts, and its hash
guards resumption (a changed config is refused unless forced).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from taskalign.errors import InputError

ENCODERS_DEFAULT = ("profound_conv", "provicnet")
TASKS_DEFAULT = ("classification", "segmentation", "super_resolution", "distortion_correction", "synthesis")


@dataclass(frozen=True)
class DataConfig:
    source: str = "phantom"                        # registered data source: phantom, real (a folder), yours
    path: str | None = None                        # real-data folder (source "real")
    layout: str = "manifest"                       # real folders: manifest | picai | msd
    dwi: str | None = None                         # msd only (no DWI): "zero" or "drop"
    columns: tuple[tuple[str, str], ...] = ()      # manifest: (name, CSV column) overrides (--columns)
    label_rule: str | None = None                  # csPCa label from a score column, e.g. "pirads>=4"
    series: tuple[tuple[str, str], ...] = ()       # manifest DICOM folders: (sequence, description or UID)
    shape: tuple[int, int, int] = (16, 48, 48)     # (D, H, W) voxels of every case
    spacing_mm: tuple[float, float, float] = (3.0, 1.5, 1.5)
    n_train: int = 48                              # training pool: the largest labelled-set size
    n_val: int = 16
    n_test: int = 32
    train_cases: tuple[int, ...] = ()              # labelled-set sizes (regimes), nested subsets of the
                                                   # pool; () = the whole pool, one regime
    data_seed: int = 0                             # cohort, split and degradations; not the cell seed
    n_reference: int = 16                          # reference probe set for each encoder's kernel


RETIRED_DATA_FIELDS = ("n_pretrain",)
"""DataConfig fields of older config.json files that no longer mean anything (read and dropped)."""

LATER_DATA_FIELDS = {"columns": (), "label_rule": None, "series": (), "train_cases": ()}
"""DataConfig fields added after studies were run: left out of the hash at their defaults, so an
existing study folder keeps its hash (and its finished units)."""


def regimes(data: DataConfig) -> tuple[int, ...]:
    """The labelled-set sizes of a study, ascending; each at most the training pool (`n_train`)."""
    sizes = tuple(sorted(set(data.train_cases))) or (data.n_train,)
    if sizes[0] < 2 or sizes[-1] > data.n_train:
        raise InputError(f"labelled-set sizes {list(sizes)} must lie in [2, n_train = {data.n_train}] "
                         "(the training pool the subsets are drawn from)")
    return sizes


@dataclass(frozen=True)
class PretrainConfig:
    source: str = "shipped"            # "shipped": the packaged foundation weights; "fresh": re-run the recipe
    steps: int | None = None           # "fresh" only: override the recipe's (None: the recipe's own)
    batch_size: int | None = None
    lr: float | None = None
    n_cases: int | None = None
    probe_cases: int = 192             # "fresh": probe cohort of the gate
    allow_weak: bool = False           # run on in-house weights that failed the gate (the report says so)


FINETUNE_LR = {"profound_conv": (2e-4, 2e-3), "provicnet": (2e-4, 2e-3), "default": (2e-4, 2e-3)}
SCRATCH_LR = {"profound_conv": (2e-3, 2e-3), "provicnet": (5e-4, 2e-3), "default": (5e-4, 2e-3)}


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 96                # optimisation steps, equal for every model of a task
    steps_per_epoch: int = 8       # one validation (one curve point) per epoch
    batch_size: int = 4            # volumes per step, for every model
    slices_per_volume: int = 4     # 2.5D encoders, dense tasks: slices drawn per volume and step (case-level: all)
    warmup_steps: int = 8
    weight_decay: float = 0.01
    patience_epochs: int = 0       # early stopping on the validation metric; 0 = off (best epoch is kept)
    # learning rates per family, (encoder, head): `lr` for a pretrained start (the encoder slower
    # than its fresh head, so fine-tuning keeps what pretraining gave), `scratch_lr` for random
    # init; chosen by `taskalign sweep-lr` on validation cases (docs/fine_tuning.md)
    lr: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(FINETUNE_LR))
    scratch_lr: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(SCRATCH_LR))
    specialised_lr: float = 2e-3
    threads: int = 2               # torch threads per run, pinned (a run gives the same numbers wherever it runs)

    def lr_for(self, family: str, pretrained: bool = True) -> tuple[float, float]:
        table = self.lr if pretrained else self.scratch_lr
        return table.get(family, table["default"])


@dataclass(frozen=True)
class AlignConfig:
    permutations: int = 200


@dataclass(frozen=True)
class StudyConfig:
    preset: str = "quick"
    encoders: tuple[str, ...] = ENCODERS_DEFAULT
    tasks: tuple[str, ...] = TASKS_DEFAULT
    seeds: tuple[int, ...] = (0,)
    study_seed: int = 0
    encoder_size: str = "micro"
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    train: TrainConfig = TrainConfig()
    align: AlignConfig = AlignConfig()
    weights: tuple[tuple[str, str], ...] = ()      # (encoder, file) published weights instead of in-house pretraining

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        d = self.to_dict()
        d["data"] = {k: v for k, v in d["data"].items() if not (k in LATER_DATA_FIELDS and v == LATER_DATA_FIELDS[k])}
        text = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_from_dict(d: dict[str, Any]) -> StudyConfig:
    """Inverse of `StudyConfig.to_dict` (lists back to tuples)."""
    def tup(x):
        return tuple(tup(v) for v in x) if isinstance(x, list) else x
    train = dict(d["train"])
    for key in ("lr", "scratch_lr"):
        if key in train:
            train[key] = {k: tuple(v) for k, v in train[key].items()}
    return StudyConfig(
        preset=d["preset"], encoders=tup(d["encoders"]), tasks=tup(d["tasks"]), seeds=tup(d["seeds"]),
        study_seed=d["study_seed"], encoder_size=d["encoder_size"],
        data=DataConfig(**{k: tup(v) for k, v in d["data"].items() if k not in RETIRED_DATA_FIELDS}),
        pretrain=PretrainConfig(**d["pretrain"]), train=TrainConfig(**train),
        align=AlignConfig(**d["align"]), weights=tup(d.get("weights", [])),
    )


def smoke() -> StudyConfig:
    """Every stage end to end on a handful of tiny cases; one to two minutes on a 2-core CPU."""
    return StudyConfig(
        preset="smoke",
        data=DataConfig(shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5), n_train=8, n_val=4,
                        n_test=8, n_reference=8),
        pretrain=PretrainConfig(source="fresh", steps=12, batch_size=2, n_cases=12, probe_cases=16, allow_weak=True),
        train=TrainConfig(steps=12, steps_per_epoch=4, batch_size=2, slices_per_volume=2, warmup_steps=2),
        align=AlignConfig(permutations=50),
    )


LABELLED_POOL = DataConfig(n_train=48, n_val=32, n_test=96)
"""The quick and standard presets share one cohort: a pool of 48 labelled training cases, 32
validation and 96 test cases, so the 16-case regime of `quick` is the same cases as the 16-case
regime of `standard` (seed 0 of `standard` repeats `quick`'s cells)."""

ONE_THREAD = TrainConfig(threads=1)
"""The quick and standard presets' training: one thread per run, so the local backend runs one
worker per core (two single-thread runs side by side did 1.15x the work of one two-thread run on
the 2-core reference machine, docs/measurements.md) and a run's numbers do not depend on the
machine's core count."""


def quick() -> StudyConfig:
    """The default `make study`: all 10 cells at 16 labelled cases, one seed (~15 min on 2 cores)."""
    return StudyConfig(preset="quick", data=dataclasses.replace(LABELLED_POOL, train_cases=(16,)), train=ONE_THREAD)


def standard() -> StudyConfig:
    """Results worth reporting: three labelled-set sizes (8, 16, 48) and three seeds, the quick
    preset's training (about 9 × quick: two hours on a 2-core CPU; `--backend ray` spreads it)."""
    return StudyConfig(
        preset="standard", seeds=(0, 1, 2),
        data=dataclasses.replace(LABELLED_POOL, train_cases=(8, 16, 48)), train=ONE_THREAD,
        align=AlignConfig(permutations=1000),
    )


def paper() -> StudyConfig:
    """Paper-size encoders and crops; needs a GPU (hours)."""
    return StudyConfig(
        preset="paper", seeds=(0, 1, 2), encoder_size="paper",
        data=DataConfig(shape=(64, 224, 224), spacing_mm=(1.0, 0.5, 0.5), n_train=256,
                        n_val=64, n_test=128, n_reference=64),
        pretrain=PretrainConfig(source="fresh", steps=5000, batch_size=4, lr=1.5e-4, n_cases=512),
        train=TrainConfig(steps=3000, steps_per_epoch=100, batch_size=2, slices_per_volume=8, warmup_steps=100,
                          lr={"profound_conv": (1e-4, 1e-3), "provicnet": (5e-5, 1e-3), "default": (1e-4, 1e-3)},
                          specialised_lr=1e-3),
        align=AlignConfig(permutations=1000),
    )


PRESETS: dict[str, Callable[[], StudyConfig]] = {"smoke": smoke, "quick": quick, "standard": standard, "paper": paper}


def preset(name: str, **overrides: Any) -> StudyConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name](), **{k: v for k, v in overrides.items() if v is not None})
