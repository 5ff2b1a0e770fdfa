"""`segmentation`: clinically significant lesion mask from T2w, DWI and ADC (DESIGN.md §2).

Target: csPCa lesions only. A graded mask (ISUP 1-5) keeps grade ≥ 2; a 0/1 mask is taken as
csPCa lesions already (the PI-CAI convention). A mask's encoding comes from
`case.meta["lesion_values"]` ("isup" or "binary") when the source says it; otherwise values
above 1 mean ISUP grades, and a 0/1 mask of a case labelled csPCa-negative (`label == 0`) is
read as ISUP-1 lesions, i.e. no csPCa, so mask and label never contradict each other.

Sample: input (3, D, H, W) in units, target (1, D, H, W) float32 {0, 1}. Loss: MONAI DiceCELoss
on 2-class logits (softmax, one-hot target). Evaluation: the prediction (2, D, H, W) logits is
arg-maxed; Dice per case; the primary `dice` is the mean over cases that have a lesion. Cases
without a lesion appear in the rows (Dice NaN, predicted voxel count) and in
`false_positive_case_fraction` (share of lesion-free cases with any predicted voxel).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss

from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.tasks.base import Sample, Task, register_task
from taskalign.tasks.metrics import dice

CSPCA_MIN_ISUP = 2


def cspca_lesion_mask(case: Case) -> np.ndarray:
    """(D, H, W) bool mask of the case's clinically significant lesions (see module doc)."""
    if case.lesion is None:
        raise ValueError(f"case {case.case_id}: the segmentation task needs case.lesion (a lesion mask)")
    lesion = np.asarray(case.lesion)
    encoding = case.meta.get("lesion_values")
    if encoding is None:
        graded = lesion.max(initial=0) > 1 or case.label == 0
        encoding = "isup" if graded else "binary"
    if encoding == "isup":
        return lesion >= CSPCA_MIN_ISUP
    if encoding == "binary":
        return lesion > 0
    raise ValueError(f"case {case.case_id}: meta['lesion_values'] must be 'isup' or 'binary', got {encoding!r}")


@register_task("segmentation")
class Segmentation(Task):
    name = "segmentation"
    kind = "segmentation"
    input_sequences = SEQUENCES
    out_channels = 2
    metric_name = "dice"
    higher_is_better = True
    requires = ("lesion",)

    def __init__(self) -> None:
        self._dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)

    def make_sample(self, case: Case, seed: int) -> Sample:
        """No randomness: input is the case's image, target its csPCa lesion mask."""
        return Sample(
            case_id=case.case_id,
            input=case.image.astype(np.float32, copy=True),
            input_sequences=self.input_sequences,
            target=cspca_lesion_mask(case)[None].astype(np.float32),
            mask=body_mask(case),
            gland=case.gland,
        )

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """DiceCE; pred (B, 2, D, H, W) logits, target (B, 1, D, H, W) {0, 1}."""
        if pred.shape[1] != 2 or target.shape[1] != 1 or pred.shape[2:] != target.shape[2:]:
            raise ValueError(f"segmentation: expected logits (B, 2, D, H, W) and target (B, 1, D, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        return self._dice_ce(pred, target.to(pred.dtype))

    def evaluate(self, preds: list[np.ndarray], samples: list[Sample]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """preds: one (2, D, H, W) array of logits (or probabilities) per case."""
        if len(preds) != len(samples):
            raise ValueError(f"segmentation: {len(preds)} predictions for {len(samples)} samples")
        rows = []
        for pred, sample in zip(preds, samples):
            pred = np.asarray(pred)
            if pred.shape != (2, *sample.target.shape[1:]):
                raise ValueError(f"segmentation, case {sample.case_id}: expected (2, D, H, W) logits "
                                 f"on grid {sample.target.shape[1:]}, got {pred.shape}")
            predicted, truth = pred.argmax(axis=0) == 1, sample.target[0] > 0.5
            has_lesion = bool(truth.any())
            rows.append({
                "case_id": sample.case_id,
                "has_lesion": has_lesion,
                "dice": dice(predicted, truth) if has_lesion else float("nan"),
                "lesion_voxels": int(truth.sum()),
                "predicted_voxels": int(predicted.sum()),
            })
        return self._aggregate(rows), rows

    @staticmethod
    def _aggregate(rows: list[dict[str, Any]]) -> dict[str, float]:
        with_lesion = [r["dice"] for r in rows if r["has_lesion"]]
        without = [r["predicted_voxels"] > 0 for r in rows if not r["has_lesion"]]
        if not with_lesion:
            warnings.warn("segmentation: no test case has a csPCa lesion; mean Dice is NaN",
                          RuntimeWarning, stacklevel=3)
        return {
            "dice": float(np.mean(with_lesion)) if with_lesion else float("nan"),
            "cases_with_lesion": float(len(with_lesion)),
            "false_positive_case_fraction": float(np.mean(without)) if without else float("nan"),
        }
