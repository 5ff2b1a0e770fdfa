"""A frozen drift proxy: how far the target data's frozen features sit from the encoder's own
features on its pretraining distribution, before any fine-tuning.

    drift_proxy = MMD²_u(f(target cases), f(reference cases); k_ref)

f is the case-level feature the task's head reads (classification: `pooled`; dense and image
tasks: each map's mean over positions, concatenated), the reference cases are the study's
reference probe set (a held-out draw of the phantom pretraining cohort, DESIGN.md §6), MMD²_u
is the unbiased two-sample U-statistic (Gretton et al. 2012, Eq. 3) and k_ref the encoder's
reference kernel: RBF kernels at {¼, ½, 1, 2, 4} × σ_ref averaged, σ_ref the median pairwise
distance of the encoder's reference features (`taskalign.align.reference_kernel`), so the value
is in the encoder's own scale and compares across encoders. Smaller means the target looks like
what the encoder was pretrained on, the premise of the paper's D2P (a small feature change
during fine-tuning); it is not D2P, which needs the fine-tuned encoder. For a checkpoint
pretrained elsewhere the reference is still the phantom pretraining cohort, not its own data.
"""
from __future__ import annotations

from taskalign.align import mmd2, reference_kernel
from taskalign.advise.checks import as_features


def drift_proxy(target_features, reference_features) -> float:
    """MMD²_u between target (m, d) and reference (n, d) case features under the reference kernel
    of the reference features (module docstring). Smaller is better."""
    x = as_features(target_features, "target_features")
    y = as_features(reference_features, "reference_features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"target features have {x.shape[1]} columns, reference features {y.shape[1]}; "
                         "both must come from the same encoder and feature")
    return float(mmd2(x, y, kernel=reference_kernel(y), estimator="unbiased-u").mmd2)
