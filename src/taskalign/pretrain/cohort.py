"""Pretraining cohorts made on demand: a case (and its preprocessed volume) is rendered the first
time a batch draws it and kept afterwards, so a run over a 1,000-case phantom cohort starts at
once, and re-running its first steps renders only the cases those steps draw."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Generic, TypeVar

from taskalign.data.case import Case

T = TypeVar("T")


class LazySequence(Sequence, Generic[T]):
    """`n` items, item i = make(i) on first access, then cached."""

    def __init__(self, n: int, make: Callable[[int], T]) -> None:
        if n < 0:
            raise ValueError(f"a cohort size must be >= 0, got {n}")
        self.n, self.make, self.cache = n, make, {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} outside a cohort of {self.n}")
        i %= self.n
        if i not in self.cache:
            self.cache[i] = self.make(i)
        return self.cache[i]


class PhantomCohort(LazySequence[Case]):
    """Cases 0..n-1 of a phantom cohort (`taskalign.data.phantom.phantom_case`), rendered on demand.
    Every phantom case carries gland, zone and lesion masks (`all_labelled`)."""

    all_labelled = True

    def __init__(self, n: int, seed: int, cohort: str = "pretrain", shape=(16, 48, 48),
                 spacing_mm=(3.0, 1.5, 1.5)) -> None:
        from taskalign.data.phantom import phantom_case

        self.shape, self.spacing_mm = tuple(shape), tuple(spacing_mm)
        super().__init__(n, lambda i: phantom_case(i, seed, cohort, self.shape, self.spacing_mm))


def case_shapes(cases: Sequence[Case]) -> set[tuple[int, int, int]]:
    """The volume shapes of a cohort (without rendering a `PhantomCohort`)."""
    return {cases.shape} if isinstance(cases, PhantomCohort) else {c.shape for c in cases}


def labelled_cases(cases: Sequence[Case]) -> Sequence[Case]:
    """The cases with a lesion mask (all of a `PhantomCohort`, without rendering it)."""
    return cases if getattr(cases, "all_labelled", False) else [c for c in cases if c.lesion is not None]
