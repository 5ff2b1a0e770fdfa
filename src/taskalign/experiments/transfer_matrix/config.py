"""The transfer matrix's configuration: which architectures, which sources, which targets, and
how much pretraining every source gets.

Sources of one architecture (all pretrained on the same phantom pretraining cohort, with the same
budget: `budget_fraction` of its shipped self-supervised recipe's steps, at the recipe's batch):

    none                 random initialisation (the study's scratch run; gain 0 by definition)
    ssl-<p>              the family's own self-supervised recipe run for p % of the budget
                         (its own LR schedule over the shorter run): the dose series
    sup-<task>           supervised pretraining on one of the five task objectives, with the
                         labels of the pretraining cohort's phantom cases, for the whole budget
    shipped              the shipped in-house foundation weights (100 % of the recipe, far more
                         than the budget): the dose series' end, at no pretraining cost

Each source is fine-tuned on each target task at `n_train` labelled cases for `finetune_steps`
steps, seeds `seeds`, with the study's learning rates (pretrained sources: `train.lr`, none:
`train.scratch_lr`), heads, metrics and alignment stage.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from taskalign.errors import InputError
from taskalign.study.config import TASKS_DEFAULT, StudyConfig, preset


@dataclass(frozen=True)
class MatrixConfig:
    preset: str = "quick"
    encoders: tuple[str, ...] = ("provicnet",)       # one architecture per family
    targets: tuple[str, ...] = TASKS_DEFAULT
    seeds: tuple[int, ...] = (0,)
    n_train: int = 16                                 # labelled target cases (label-scarce regime)
    finetune_steps: int = 96
    budget_fraction: float = 0.02                     # every source's pretraining, of the recipe's steps
    doses: tuple[float, ...] = (0.1, 0.3, 1.0)        # self-supervised doses, fractions of the budget
    supervised: tuple[str, ...] = TASKS_DEFAULT       # task objectives of the supervised sources
    supervised_cases: int = 128                       # labelled pretraining-cohort cases (supervised sources)
    shipped: bool = True                              # add the shipped weights as a source
    permutations: int = 10000                         # within-target correlations: permutation p
    bootstrap: int = 2000                             # and percentile interval over sources

    @property
    def sources(self) -> tuple[str, ...]:
        ssl = tuple(f"ssl-{round(100 * d)}" for d in self.doses)
        return ("none", *ssl, *(f"sup-{t}" for t in self.supervised), *(("shipped",) if self.shipped else ()))

    def study(self) -> StudyConfig:
        """The study configuration the fine-tuning runs use (the base preset's data, training
        and alignment settings; the matrix's targets, seeds, regime and steps)."""
        base = preset("quick" if self.preset == "quick" else "standard" if self.preset == "standard" else "smoke")
        train = dataclasses.replace(base.train, steps=self.finetune_steps,
                                    warmup_steps=min(base.train.warmup_steps, max(1, self.finetune_steps // 8)))
        return dataclasses.replace(base, encoders=self.encoders, tasks=self.targets, seeds=self.seeds,
                                   data=dataclasses.replace(base.data, train_cases=(self.n_train,)), train=train)

    @property
    def train(self):
        return self.study().train

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def matrix_config_from_dict(d: dict[str, Any]) -> MatrixConfig:
    return MatrixConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def quick() -> MatrixConfig:
    """One family (ProViCNet), 9 sources (none, ssl-10, ssl-100, five supervised, shipped) × 5
    targets, 16 labelled cases, one seed, 40 fine-tuning steps: within 20 minutes on a 2-core
    CPU (docs/transfer_matrix.md)."""
    return MatrixConfig(finetune_steps=40, doses=(0.1, 1.0), supervised_cases=64)


def standard() -> MatrixConfig:
    """Both families, three seeds, the study's 96 steps, a budget of 10 % of the recipe: hours on
    a CPU; `--workers` or a GPU shortens it."""
    return MatrixConfig(preset="standard", encoders=("profound_conv", "provicnet"), seeds=(0, 1, 2),
                        finetune_steps=96, budget_fraction=0.1, supervised_cases=256)


def smoke() -> MatrixConfig:
    """The tests' matrix: tiny grid, two targets, one dose, a few steps."""
    return MatrixConfig(preset="smoke", targets=("classification", "super_resolution"), n_train=8,
                        finetune_steps=8, budget_fraction=0.001, doses=(1.0,), supervised=("classification",),
                        supervised_cases=8, shipped=False, permutations=200, bootstrap=200)


MATRIX_PRESETS = {"smoke": smoke, "quick": quick, "standard": standard}


def matrix_preset(name: str, **overrides: Any) -> MatrixConfig:
    if name not in MATRIX_PRESETS:
        raise InputError(f"unknown transfer-matrix preset {name!r}; choose one of {', '.join(MATRIX_PRESETS)}")
    return dataclasses.replace(MATRIX_PRESETS[name](), **{k: v for k, v in overrides.items() if v is not None})
