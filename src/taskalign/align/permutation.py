"""Permutation tests for MMD², all permutations from one kernel matrix as batched quadratic forms.

p-value = (1 + #{b : T_b >= T_obs}) / (1 + B), B permutations drawn with a generator seeded by
`seed` on the kernel matrix's device (CPU and CUDA generators differ: one seed gives one set of
permutations per device type, so a p-value can differ between CPU and GPU by Monte-Carlo error).

Two samples (unbiased-u, biased-v). A relabelling is an indicator row p ∈ {0,1}^N with m ones
(the new X). With K the pooled (N, N) kernel matrix, r = K 1 and S = 1ᵀ K 1,

    q_xx = pᵀ K p,   q_xy = pᵀ r - q_xx,   q_yy = S - 2 pᵀ r + q_xx,
    T(p) = a q_xx + b q_yy - 2 g q_xy,
    unbiased-u: a = 1/(m(m-1)), b = 1/(n(n-1)), g = 1/(mn), with K's diagonal set to 0,
    biased-v:   a = 1/m²,       b = 1/n²,       g = 1/(mn).

The weights of every statistic sum to zero over each row, so subtracting a constant from the
(off-diagonal) entries of K changes no T(p); K is shifted by its mean first, which keeps the
float32 quadratic forms far from cancellation. A batch P (B', N) costs one matmul P K.

Paired (paired-u). Swapping x_i <-> y_i flips the sign of every h(z_i, z_j) with j ≠ i
swapped differently, so for swap signs s ∈ {±1}^n

    T(s) = sᵀ H s / (n(n-1)),   H = K_xx + K_yy - K_xy - K_xyᵀ with zero diagonal,

and a batch S (B', n) costs one matmul S H.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from taskalign.align.estimators import fsum, rowsum_rounded

DEFAULT_CHUNK_ENTRIES = 1 << 24  # entries of one (B', N) batch of labels


@dataclass(frozen=True)
class PermutationResult:
    """Observed statistic as computed by the batched path, the B permuted ones, and the p-value."""

    p_value: float
    observed: float
    permuted: torch.Tensor  # (B,) float64, on the CPU
    permutations: int
    seed: int


def p_value_from(observed: float, permuted: torch.Tensor) -> float:
    """(1 + #{permuted >= observed}) / (1 + B)."""
    return (1.0 + float((permuted >= observed).sum())) / (1.0 + permuted.numel())


def _batch_sizes(total: int, per_batch: int) -> Iterator[int]:
    done = 0
    while done < total:
        size = min(per_batch, total - done)
        yield size
        done += size


def two_sample_label_batches(n_total: int, m: int, permutations: int, seed: int,
                             chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
                             device: "torch.device | str" = "cpu") -> Iterator[torch.Tensor]:
    """Yield (B', m) long tensors on `device`: the pooled indices that form the new X, B
    permutations in all. Each row is the m smallest of N seeded uniform keys, i.e. a uniform
    random m-subset."""
    gen = torch.Generator(device=device).manual_seed(seed)
    for size in _batch_sizes(permutations, max(1, chunk_entries // n_total)):
        keys = torch.rand(size, n_total, generator=gen, device=device)
        yield keys.topk(m, dim=1, largest=False).indices


def paired_sign_batches(n: int, permutations: int, seed: int, chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
                        device: "torch.device | str" = "cpu",
                        dtype: torch.dtype = torch.float64) -> Iterator[torch.Tensor]:
    """Yield (B', n) tensors of ±1 on `device`: -1 swaps x_i and y_i. B permutations in all."""
    gen = torch.Generator(device=device).manual_seed(seed)
    for size in _batch_sizes(permutations, max(1, chunk_entries // n)):
        flips = torch.rand(size, n, generator=gen, device=device) < 0.5
        yield 1.0 - 2.0 * flips.to(dtype)


def _coefficients(estimator: str, m: int, n: int) -> tuple[float, float, float]:
    if estimator == "unbiased-u":
        return 1.0 / (m * (m - 1)), 1.0 / (n * (n - 1)), 1.0 / (m * n)
    if estimator == "biased-v":
        return 1.0 / m**2, 1.0 / n**2, 1.0 / (m * n)
    raise ValueError(f"two-sample permutation test: estimator must be unbiased-u or biased-v, got {estimator!r}")


def two_sample_permutation_test_(k: torch.Tensor, m: int, estimator: str, permutations: int, seed: int,
                                 chunk_entries: int = DEFAULT_CHUNK_ENTRIES) -> PermutationResult:
    """Permutation test of the two-sample statistic from the pooled (N, N) kernel matrix `k`,
    first m rows X. Overwrites `k` (diagonal and shift, see module docstring) to save memory."""
    n_total = k.shape[0]
    n = n_total - m
    a, b, g = _coefficients(estimator, m, n)
    if estimator == "unbiased-u":
        k.fill_diagonal_(0.0)
        k.sub_(fsum(rowsum_rounded(k)) / (n_total * (n_total - 1))).fill_diagonal_(0.0)
    else:
        k.sub_(fsum(rowsum_rounded(k)) / n_total**2)
    r = rowsum_rounded(k)
    s_all = fsum(r)

    def stats(index: torch.Tensor) -> torch.Tensor:  # (B', m) -> (B',)
        p = torch.zeros(index.shape[0], n_total, dtype=k.dtype, device=k.device)
        p.scatter_(1, index, 1.0)
        q_xx = rowsum_rounded((p @ k).gather(1, index))
        r_x = r[index].sum(1)
        q_xy, q_yy = r_x - q_xx, s_all - 2.0 * r_x + q_xx
        return (a * q_xx + b * q_yy - 2.0 * g * q_xy).cpu()

    observed = float(stats(torch.arange(m, device=k.device).unsqueeze(0))[0])
    batches = two_sample_label_batches(n_total, m, permutations, seed, chunk_entries, k.device)
    permuted = torch.cat([stats(index) for index in batches]) if permutations else torch.empty(0, dtype=torch.float64)
    return PermutationResult(p_value_from(observed, permuted), observed, permuted, permutations, seed)


def paired_h_matrix(k: torch.Tensor, n: int) -> torch.Tensor:
    """Pooled (2n, 2n) kernel matrix -> H = K_xx + K_yy - K_xy - K_xyᵀ, zero diagonal, (n, n)."""
    kxy = k[:n, n:]
    h = k[:n, :n] + k[n:, n:]
    h.sub_(kxy).sub_(kxy.T).fill_diagonal_(0.0)
    return h


def paired_permutation_test(h: torch.Tensor, permutations: int, seed: int,
                            chunk_entries: int = DEFAULT_CHUNK_ENTRIES) -> PermutationResult:
    """Permutation test of the paired statistic from H (n, n) (see `paired_h_matrix`), swapping
    within pairs: T(s) = sᵀ H s / (n(n-1))."""
    n = h.shape[0]

    def stats(s: torch.Tensor) -> torch.Tensor:  # (B', n) -> (B',)
        return (rowsum_rounded((s @ h).mul_(s)) / (n * (n - 1))).cpu()

    observed = float(stats(torch.ones(1, n, dtype=h.dtype, device=h.device))[0])
    batches = paired_sign_batches(n, permutations, seed, chunk_entries, h.device, h.dtype)
    permuted = torch.cat([stats(s) for s in batches]) if permutations else torch.empty(0, dtype=torch.float64)
    return PermutationResult(p_value_from(observed, permuted), observed, permuted, permutations, seed)
