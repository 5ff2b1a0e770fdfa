"""What the three image-to-image tasks share: the squared-error loss and the image evaluation.

Loss: mean squared error between prediction and target over the whole volume in target space
(no mask: the background is part of the image a model must reproduce, and the target spaces put
tissue on a scale of about 1, so the loss weights every task alike). Squared error because the
primary metric, PSNR, is a function of it; and because every model predicts a residual on the
task's base, which is exactly right outside the degraded region: under L1 the best residual
where the correction is uncertain is its median, zero, and models settled on the identity
(measured: a DynUNet on distortion correction, quick grid, 96 steps, stayed at the identity's
22.31 dB validation PSNR under L1 and reached 24.21 dB under squared error; 384 L1 steps gave 22.31).

Evaluation (DESIGN.md §2): per case and output channel, prediction and target go back to units
(`Sample.to_units`), are scaled to [0, 1] by the target's 1st / 99th percentiles inside the body
mask, and PSNR (data_range 1, capped at 100 dB), SSIM (per axial slice) and NCC are taken inside
the mask (`metrics.image_metrics`). With several output channels a case's metric is the mean
over its channels, and the per-channel values are reported beside it (`psnr_dwi`, ...). A case
whose target is constant inside its mask gets NaN and a warning instead of aborting the study.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from taskalign.tasks.base import Sample, Task
from taskalign.tasks.metrics import image_metrics
from taskalign.tasks.normalise import target_to_units

IMAGE_METRICS: tuple[str, ...] = ("psnr", "ssim", "ncc")


class ImageTask(Task):
    kind = "image"
    metric_name = "psnr"
    higher_is_better = True
    requires = ()

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error; pred and target (B, C_out, D, H, W) in target space."""
        if pred.shape != target.shape:
            raise ValueError(f"{self.name}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        return F.mse_loss(pred, target.to(pred.dtype))

    def evaluate(self, preds: list[np.ndarray], samples: list[Sample]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """preds: one (C_out, D, H, W) array per case in target space (base already added)."""
        if len(preds) != len(samples):
            raise ValueError(f"{self.name}: {len(preds)} predictions for {len(samples)} samples")
        rows = [self._case_row(np.asarray(p), s) for p, s in zip(preds, samples)]
        keys = [k for k in rows[0] if k != "case_id"] if rows else list(IMAGE_METRICS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as they should
            metrics = {k: float(np.nanmean([r[k] for r in rows])) if rows else float("nan") for k in keys}
        return metrics, rows

    def _case_row(self, pred: np.ndarray, sample: Sample) -> dict[str, Any]:
        if pred.shape != sample.target.shape:
            raise ValueError(f"{self.name}, case {sample.case_id}: prediction shape {pred.shape}, "
                             f"target shape {sample.target.shape}")
        pred_units = target_to_units(pred, sample.to_units)
        target_units = target_to_units(sample.target, sample.to_units)
        per_channel: dict[str, dict[str, float]] = {}
        for c, channel in enumerate(sample.to_units):
            try:
                per_channel[channel] = image_metrics(pred_units[c], target_units[c], sample.mask)
            except ValueError as error:
                warnings.warn(f"{self.name}, case {sample.case_id}, channel {channel}: {error}; metrics are NaN",
                              RuntimeWarning, stacklevel=3)
                per_channel[channel] = {m: float("nan") for m in IMAGE_METRICS}
        row: dict[str, Any] = {"case_id": sample.case_id}
        for metric in IMAGE_METRICS:
            row[metric] = float(np.mean([values[metric] for values in per_channel.values()]))
            if len(per_channel) > 1:
                row.update({f"{metric}_{ch}": values[metric] for ch, values in per_channel.items()})
        return row
