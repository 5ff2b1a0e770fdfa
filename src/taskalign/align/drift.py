"""Feature drift of one encoder between two states: D2P, D2R, D2S (DESIGN.md §6).

The two feature sets come from the *same* probe images, so the samples are paired and the
estimator is the paired U-statistic (estimators.py, "paired-u"); the permutation test swaps
within pairs. The kernel is fixed per encoder (and per layer) by `reference_kernel`:

    k_ref(a, b) = 1/5 Σ_{c ∈ {¼, ½, 1, 2, 4}} exp(-||a - b||² / (2 (c σ_ref)²)),
    σ_ref = median pairwise distance over the union of the *pretrained* and the *random-init*
            encoder's features on the reference probe set (kernels.py convention: lower median
            of the off-diagonal distances of the 2n pooled rows),

so every D2x of that encoder, on every task, uses one kernel and values compare across tasks.
The random-init features enter σ_ref so that a pretrained state whose features are nearly
collapsed (a cls token no head reads) does not give a σ_ref far below the distances that D2R and
D2S measure, which would put every value at its ceiling.

Saturation. With W = mean_{i≠j} [k(a_i,a_j) + k(b_i,b_j)] (similarity within each state) and
C = mean_{i≠j} [k(a_i,b_j) + k(a_j,b_i)] (across states), the paired estimate is MMD² = W − C,
and W is its ceiling (k ≥ 0). `saturation = MMD² / W`: near 1 the two states share no kernel
mass, i.e. they are many σ_ref apart; the value then measures W, how tight each state's features
are, not how far apart the states are, and two D2x at saturation do not rank distances. A value
at `saturation >= SATURATED` is flagged (`DriftResult.saturated`). Beside each MMD², `drift`
gives the paired energy distance (energy.py), which has no bandwidth and no ceiling.

    kernels = reference_kernels(pretrained_banks, random_banks)      # {layer: Kernel}
    d2p = layer_profile(finetuned_banks, pretrained_banks, kernels, permutations=1000)
    D2P = drift(fine-tuned, pretrained);  D2R = drift(fine-tuned, random init);
    D2S = drift(fine-tuned, same architecture trained from scratch)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import torch

from taskalign.align.blocked import DEFAULT_MAX_KERNEL_ENTRIES
from taskalign.align.cka import linear_cka
from taskalign.align.energy import energy_distance
from taskalign.align.features import as_features
from taskalign.align.kernels import MEDIAN_MAX_POINTS, Kernel, median_distance
from taskalign.align.mmd import mmd2

REFERENCE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
DRIFT_NAMES = ("D2P", "D2R", "D2S")
SATURATION_MAX_N = 4096          # saturation needs three dense n × n kernel matrices
SATURATED = 0.9                  # a D2x at >= 90 % of its ceiling measures feature spread, not distance


@dataclass(frozen=True)
class DriftResult:
    """Paired MMD² between two states of one encoder's features, with what is needed to read it."""

    mmd2: float
    p_value: float | None
    n: int
    bandwidths: tuple[float, ...]
    estimator: str = "paired-u"
    permutations: int = 0
    seed: int = 0
    p_value_method: str = "none"
    cka: float | None = None   # debiased linear CKA between the same pairs (DESIGN §6)
    saturation: float | None = None   # MMD² / its ceiling W (module docstring); None above SATURATION_MAX_N
    energy: float | None = None       # paired energy distance of the same pairs (energy.py)

    @property
    def saturated(self) -> bool:
        """saturation >= SATURATED (False when saturation was not computed)."""
        return self.saturation is not None and self.saturation >= SATURATED

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bandwidths"] = list(self.bandwidths)
        out["saturated"] = self.saturated
        return out


def reference_kernel(pretrained_features, random_features=None, scales: Sequence[float] = REFERENCE_SCALES,
                     max_points: int = MEDIAN_MAX_POINTS, seed: int = 0) -> Kernel:
    """The encoder's fixed RBF kernel: the average of RBF kernels at `scales` × σ_ref, σ_ref the
    median pairwise distance over the union of the pretrained (n, d) and, when given, the
    random-init (n', d) features on the reference probe set (module docstring)."""
    parts = [as_features(pretrained_features, "pretrained_features")]
    if random_features is not None:
        parts.append(as_features(random_features, "random_features"))
        if parts[1].shape[1] != parts[0].shape[1]:
            raise ValueError(f"pretrained and random-init reference features differ in width: "
                             f"{parts[0].shape[1]} vs {parts[1].shape[1]}")
        if parts[0].dtype != parts[1].dtype:
            parts = [p.double() for p in parts]
    sigma, rule = median_distance(parts, max_points, seed)
    scale_text = ", ".join(f"{s:g}" for s in scales)
    source = "pretrained and random-init features" if random_features is not None else "pretrained features"
    rule = f"reference kernel: {{{scale_text}}} × σ_ref, σ_ref = {sigma:.6g} from the {source} ({rule})"
    return Kernel("rbf", tuple(float(s) * sigma for s in scales), rule)


def reference_kernels(pretrained_banks: Mapping[str, "torch.Tensor"],
                      random_banks: Mapping[str, "torch.Tensor"] | None = None, **kwargs) -> dict[str, Kernel]:
    """{layer: (n, d_layer) pretrained features} and optionally the random-init ones of the same
    layers -> {layer: reference_kernel}."""
    if random_banks is not None:
        missing = [layer for layer in pretrained_banks if layer not in random_banks]
        if missing:
            raise ValueError(f"random_banks lacks layer(s) {missing} (have {list(random_banks)})")
    return {layer: reference_kernel(features, None if random_banks is None else random_banks[layer], **kwargs)
            for layer, features in pretrained_banks.items()}


def saturation(features_a, features_b, kernel: Kernel) -> float:
    """MMD² / W of the paired estimate (module docstring): 1 − C / W, with the diagonals i = j
    left out of both means like the estimator does. features (n, d) of the same n images, n ≥ 2."""
    a = as_features(features_a, "features_a").double()
    b = as_features(features_b, "features_b").double()
    if a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"saturation needs two (n, d) feature sets of one shape with n >= 2, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    off = ~torch.eye(a.shape[0], dtype=torch.bool)
    kab = kernel(a, b)
    within = (kernel(a)[off].mean() + kernel(b)[off].mean()).item()
    across = (kab[off].mean() + kab.T[off].mean()).item()
    return 1.0 - across / within if within > 0 else float("nan")


def drift(features_a, features_b, kernel: Kernel, permutations: int = 1000, seed: int = 0, *,
          p_value_method: str = "auto", max_kernel_entries: int = DEFAULT_MAX_KERNEL_ENTRIES,
          with_cka: bool = True, with_energy: bool = True) -> DriftResult:
    """Paired MMD² between features_a (n, d) and features_b (n, d) of the same n probe images
    (row i of both = image i), with the encoder's fixed `kernel` (see `reference_kernel`).

    D2P = drift(fine-tuned, pretrained), D2R = drift(fine-tuned, random), D2S = drift(fine-tuned,
    scratch). p-value: permutations that swap within pairs (see mmd.mmd2 for large n). With
    `with_energy`, the paired energy distance of the same pairs rides along (n <= SATURATION_MAX_N)."""
    if not isinstance(kernel, Kernel):
        raise ValueError("drift needs the encoder's fixed Kernel (reference_kernel(pretrained_features)), "
                         f"got {type(kernel).__name__}")
    res = mmd2(features_a, features_b, kernel=kernel, estimator="paired-u", permutations=permutations,
               seed=seed, p_value_method=p_value_method, max_kernel_entries=max_kernel_entries)
    cka_value = linear_cka(features_a, features_b) if with_cka and res.n_x >= 4 else None
    sat = saturation(features_a, features_b, kernel) if 2 <= res.n_x <= SATURATION_MAX_N else None
    energy = energy_distance(features_a, features_b) if with_energy and 2 <= res.n_x <= SATURATION_MAX_N else None
    return DriftResult(res.mmd2, res.p_value, res.n_x, res.bandwidths, res.estimator, permutations, seed,
                       res.p_value_method, cka_value, sat, energy)


def layer_profile(banks_a: Mapping[str, "torch.Tensor"], banks_b: Mapping[str, "torch.Tensor"],
                  kernels: Mapping[str, Kernel], permutations: int = 1000, seed: int = 0,
                  **kwargs) -> dict[str, DriftResult]:
    """One drift per layer (block/stage), in the order of banks_a: {layer: (n, d_layer)} twice,
    and {layer: Kernel} (see `reference_kernels`). Every layer must be in all three mappings."""
    for name, mapping in (("banks_b", banks_b), ("kernels", kernels)):
        missing = [layer for layer in banks_a if layer not in mapping]
        if missing:
            raise ValueError(f"{name} lacks layer(s) {missing}; give every layer of banks_a "
                             f"(have {list(mapping)})")
    return {layer: drift(banks_a[layer], banks_b[layer], kernels[layer], permutations, seed, **kwargs)
            for layer in banks_a}


def drift_profiles(finetuned: Mapping[str, "torch.Tensor"], kernels: Mapping[str, Kernel], *,
                   pretrained: Mapping[str, "torch.Tensor"] | None = None,
                   random: Mapping[str, "torch.Tensor"] | None = None,
                   scratch: Mapping[str, "torch.Tensor"] | None = None,
                   permutations: int = 1000, seed: int = 0, **kwargs) -> dict[str, dict[str, DriftResult]]:
    """D2P, D2R, D2S layer profiles of one fine-tuned encoder: {"D2P": {layer: DriftResult}, ...}
    for each reference state given (banks {layer: (n, d)} of the same probe images)."""
    states = dict(zip(DRIFT_NAMES, (pretrained, random, scratch)))
    return {name: layer_profile(finetuned, banks, kernels, permutations, seed, **kwargs)
            for name, banks in states.items() if banks is not None}


def drift_ratio(d2p: DriftResult, d2r: DriftResult) -> float:
    """D2P / D2R: a scale-free drift for comparing encoders (DESIGN §6). NaN if D2R <= 0."""
    return d2p.mmd2 / d2r.mmd2 if d2r.mmd2 > 0 else float("nan")
