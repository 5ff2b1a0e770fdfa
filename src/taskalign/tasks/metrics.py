"""Per-case and per-cohort metrics of the five tasks (DESIGN.md §2).

Classification: AUROC, average precision (scikit-learn) and balanced accuracy; a test set with a
single class has no AUROC / AP: they return NaN with a warning instead of raising, so one bad
split never aborts a study.

Segmentation: Dice = 2|P ∩ T| / (|P| + |T|); two empty masks give 1.0 (the prediction is right),
but the segmentation task leaves lesion-free cases out of its mean (DESIGN.md §2).

Images: each case's prediction and target (in units) are scaled to [0, 1] by the *target's* 1st
and 99th percentiles inside the body mask and clipped (`scale_by_target_percentiles`); PSNR
(data_range 1), SSIM and NCC are then taken inside the mask. PSNR is capped at `PSNR_CAP_DB`
so that a perfect case keeps cohort means finite. SSIM is computed per axial slice (2D, the
slices are thick), the SSIM map of every slice is averaged over the mask voxels.
"""
from __future__ import annotations

import warnings

import numpy as np
from skimage.metrics import structural_similarity
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

PSNR_CAP_DB = 100.0
"""PSNR of a perfect prediction (MSE = 0) is reported as this value instead of +inf."""


# ---------------------------------------------------------------- classification
def _two_classes(labels: np.ndarray, metric: str) -> bool:
    if np.unique(labels).size < 2:
        warnings.warn(
            f"{metric} is undefined when the test set holds one class only "
            f"(labels: {np.unique(labels).tolist()}); reporting NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count ½.
    labels (N,) {0, 1}, scores (N,) any monotone score (logit or probability). NaN for one class."""
    labels = np.asarray(labels).astype(int).ravel()
    if not _two_classes(labels, "AUROC"):
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision Σ_k (R_k − R_{k−1}) P_k over the ranked scores. NaN without positives."""
    labels = np.asarray(labels).astype(int).ravel()
    if labels.sum() == 0:
        warnings.warn("average precision is undefined without positive cases; reporting NaN",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(average_precision_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of sensitivity and specificity (the recall of each class present in `labels`)."""
    labels = np.asarray(labels).astype(int).ravel()
    predicted = np.asarray(predicted).astype(int).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when a predicted class is absent from labels
        return float(balanced_accuracy_score(labels, predicted))


# ---------------------------------------------------------------- segmentation
def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice 2|P ∩ T| / (|P| + |T|) of two boolean masks of one shape; 1.0 when both are empty."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(f"dice: prediction shape {pred.shape} differs from target shape {target.shape}")
    total = int(pred.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, target).sum()) / total


# ---------------------------------------------------------------- images
def scale_by_target_percentiles(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, low: float = 1.0, high: float = 99.0
) -> tuple[np.ndarray, np.ndarray]:
    """Map pred and target (same shape, units) to [0, 1] by the target's `low` and `high`
    percentiles inside `mask`, then clip: x' = clip((x − p_low) / (p_high − p_low), 0, 1).
    Raises ValueError when the mask is empty or the target is constant inside it."""
    if pred.shape != target.shape or target.shape != mask.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, target {target.shape}, mask {mask.shape}")
    inside = target[mask.astype(bool)]
    if inside.size == 0:
        raise ValueError("the body mask is empty; image metrics are taken inside it")
    p_low, p_high = np.percentile(inside.astype(np.float64), [low, high])
    if p_high <= p_low:
        raise ValueError(f"the target is constant inside the mask (p{low:g} = p{high:g} = {p_low:g})")
    span = p_high - p_low

    def scale(x: np.ndarray) -> np.ndarray:
        return np.clip((x.astype(np.float64) - p_low) / span, 0.0, 1.0)

    return scale(pred), scale(target)


def psnr_masked(pred01: np.ndarray, target01: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR = 10 log10(data_range² / MSE) with the MSE over mask voxels; `PSNR_CAP_DB` when MSE = 0."""
    m = mask.astype(bool)
    mse = float(np.mean((pred01[m].astype(np.float64) - target01[m].astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return float(min(10.0 * np.log10(data_range**2 / mse), PSNR_CAP_DB))


def _ssim_window(height: int, width: int) -> int:
    """skimage's default 7×7 window, shrunk to the largest odd size that fits a small slice."""
    size = min(7, height, width)
    size -= 1 - size % 2
    if size < 3:
        raise ValueError(f"slices of {height}×{width} voxels are too small for SSIM (need at least 3×3)")
    return size


def ssim_masked(pred01: np.ndarray, target01: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM inside the mask. pred01, target01, mask: (D, H, W). SSIM maps (skimage,
    7×7 uniform window, K1 0.01, K2 0.03) are computed per axial slice, because through-plane
    spacing is several times the in-plane one, and averaged over the mask voxels of all slices."""
    m = mask.astype(bool)
    if not m.any():
        raise ValueError("the body mask is empty; SSIM is taken inside it")
    win = _ssim_window(*target01.shape[1:])
    total, count = 0.0, 0
    for z in np.flatnonzero(m.any(axis=(1, 2))):
        _, ssim_map = structural_similarity(
            target01[z].astype(np.float64), pred01[z].astype(np.float64),
            data_range=data_range, win_size=win, full=True,
        )
        total += float(ssim_map[m[z]].sum())
        count += int(m[z].sum())
    return total / count


def ncc_masked(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation (Pearson r) of the mask voxels; NaN if either is constant."""
    m = mask.astype(bool)
    p = pred[m].astype(np.float64) - pred[m].mean(dtype=np.float64)
    t = target[m].astype(np.float64) - target[m].mean(dtype=np.float64)
    denominator = np.sqrt((p * p).sum() * (t * t).sum())
    return float((p * t).sum() / denominator) if denominator > 0 else float("nan")


def image_metrics(pred_units: np.ndarray, target_units: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM, NCC of one channel (D, H, W) in units, after the [0, 1] target-percentile rule."""
    pred01, target01 = scale_by_target_percentiles(pred_units, target_units, mask)
    return {
        "psnr": psnr_masked(pred01, target01, mask),
        "ssim": ssim_masked(pred01, target01, mask),
        "ncc": ncc_masked(pred01, target01, mask),
    }
