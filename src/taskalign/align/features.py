"""Feature matrices in: numpy or torch, checked once, with an explicit compute dtype.

Every estimator in `taskalign.align` takes features as an (n, d) matrix, one row per sample.
`as_features` turns what a caller has (a torch tensor on any device, a numpy array) into that
matrix and says clearly what is wrong when it cannot: not 2-D, empty, NaN/Inf rows (listed).

Dtype policy (no silent changes): float32 and float64 inputs keep their dtype; float16 and
bfloat16 are computed in float32 (their round-off would swamp MMD²); integer and bool inputs
are computed in float64. Sums are accumulated in float64 everywhere, whatever the dtype.
"""
from __future__ import annotations

import numpy as np
import torch

from taskalign.errors import InputError


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype the kernel entries are computed in: float64 if any input is float64 or an
    integer type, else float32 (half and bfloat16 are promoted to float32)."""
    out = torch.float32
    for dt in dtypes:
        if dt == torch.float64 or not (dt.is_floating_point or dt.is_complex):
            out = torch.float64
        elif dt.is_complex:
            raise InputError(f"complex features ({dt}) are not supported; pass real features")
    return out


def _nonfinite_rows(x: torch.Tensor, limit: int = 10) -> str:
    bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten().tolist()
    shown = ", ".join(str(i) for i in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} row(s): {shown}{more}"


def as_features(x: "torch.Tensor | np.ndarray", name: str = "x", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Check and convert one feature matrix.

    x: (n, d) torch tensor (any device) or numpy array. Returns an (n, d) tensor on x's device,
    in `dtype` if given, else in `compute_dtype(x.dtype)`. Raises ValueError naming `name` for
    a non-2-D input, n = 0 or d = 0, and NaN/Inf entries (with the offending row indices).
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise InputError(f"{name}: object arrays are not features; pass a numeric (n, d) array")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.ndim != 2:
        hint = " (one feature per sample? use x.reshape(-1, 1))" if x.ndim == 1 else \
            " (pool tokens or flatten trailing dims: x.reshape(len(x), -1))"
        raise InputError(f"{name}: expected an (n, d) feature matrix, got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: empty feature matrix of shape {tuple(x.shape)}; need n >= 1 rows and d >= 1 columns")
    x = x.detach().to(dtype or compute_dtype(x.dtype))
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):  # a finite sum: all finite
        raise InputError(f"{name}: NaN or Inf in {_nonfinite_rows(x)}; drop or fix those rows")
    return x


def as_feature_pair(x, y, names: tuple[str, str] = ("x", "y"), dtype: torch.dtype | None = None,
                    paired: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two samples together: same feature dimension, same device, one compute dtype
    (float64 if either sample computes in float64), and for paired samples the same number of
    rows. Returns ((m, d), (n, d)) tensors."""
    a, b = as_features(x, names[0], dtype), as_features(y, names[1], dtype)
    if a.dtype != b.dtype:
        a, b = a.to(torch.float64), b.to(torch.float64)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"{names[0]} has {a.shape[1]} features per row but {names[1]} has {b.shape[1]}; "
                         "both samples must come from the same feature space")
    if a.device != b.device:
        raise InputError(f"{names[0]} is on {a.device} but {names[1]} is on {b.device}; move both to one device")
    if paired and a.shape[0] != b.shape[0]:
        raise InputError(f"paired samples need one row per pair: {names[0]} has {a.shape[0]} rows, "
                         f"{names[1]} has {b.shape[0]}")
    return a, b


def centred_pool(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(m, d), (n, d) -> the pooled sample [x; y] (m + n, d), minus its column means (a new tensor).

    Every estimator here is invariant to a common shift of both samples (distances do not move;
    for the linear kernel the U/V/paired statistics cancel the shift exactly), so any shift is
    allowed and the mean needs no extra precision; removing it keeps float32 round-off in
    ||a||² + ||b||² - 2 a·b small when features sit far from the origin."""
    z = torch.cat([x, y])
    return z.sub_(z.mean(0))
