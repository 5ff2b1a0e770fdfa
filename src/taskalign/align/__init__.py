"""Feature alignment: MMD² (two-sample, biased, paired), permutation tests, CKA, and the D2P /
D2R / D2S drift of DESIGN.md §6 with its energy-distance companion, on the feature each task's
head reads (`head_features`); probe features are extracted and stored by `align.extract`.
Works on torch tensors (CPU or GPU) and numpy arrays.

    from taskalign.align import mmd2, reference_kernel, drift, linear_cka
    res = mmd2(x, y, permutations=1000, seed=0)     # MMDResult: mmd2, p_value, bandwidths, ...
"""
from taskalign.align.cka import cka, hsic_biased, hsic_unbiased, linear_cka, rbf_cka
from taskalign.align.drift import (DRIFT_NAMES, REFERENCE_SCALES, SATURATED, DriftResult, drift, drift_profiles,
                                   drift_ratio, layer_profile, reference_kernel, reference_kernels)
from taskalign.align.energy import energy_distance
from taskalign.align.head_features import HEAD_READS, feature_banks, head_bank, head_feature
from taskalign.align.estimators import ESTIMATORS, KernelSums, linear_time_test, mmd2_from_sums
from taskalign.align.kernels import KERNEL_NAMES, Kernel, median_distance, resolve_kernel, squared_distances
from taskalign.align.mmd import MMDResult, mmd2, mmd2_biased, mmd2_paired, mmd2_unbiased

__all__ = [
    "MMDResult", "mmd2", "mmd2_unbiased", "mmd2_biased", "mmd2_paired",
    "ESTIMATORS", "KernelSums", "mmd2_from_sums", "linear_time_test",
    "KERNEL_NAMES", "Kernel", "resolve_kernel", "median_distance", "squared_distances",
    "cka", "linear_cka", "rbf_cka", "hsic_unbiased", "hsic_biased",
    "DriftResult", "REFERENCE_SCALES", "DRIFT_NAMES", "reference_kernel", "reference_kernels",
    "drift", "layer_profile", "drift_profiles", "drift_ratio", "SATURATED", "energy_distance",
    "HEAD_READS", "feature_banks", "head_bank", "head_feature",
]
