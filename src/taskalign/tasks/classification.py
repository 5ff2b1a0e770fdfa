"""`classification`: csPCa present (0/1) per patient from T2w, DWI and ADC (DESIGN.md §2).

Sample: input (3, D, H, W) in units, target (1,) float32 {0, 1} (so a batch stacks to the
(B, 1) the loss takes). Loss: binary cross-entropy on one logit per case. Evaluation: AUROC of
the logits (primary), average precision, and balanced accuracy at logit 0 (probability ½);
AUROC and AP are NaN with a warning when the test set holds one class only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.tasks.base import Sample, Task, register_task
from taskalign.tasks.metrics import auroc, average_precision, balanced_accuracy


@register_task("classification")
class Classification(Task):
    name = "classification"
    kind = "classification"
    input_sequences = SEQUENCES
    out_channels = 1
    metric_name = "auroc"
    higher_is_better = True
    requires = ("label",)

    def make_sample(self, case: Case, seed: int) -> Sample:
        """No randomness: the sample is the case itself with its label."""
        if case.label not in (0, 1):
            raise ValueError(f"case {case.case_id}: the classification task needs case.label in {{0, 1}} "
                             f"(csPCa present), got {case.label!r}")
        return Sample(
            case_id=case.case_id,
            input=case.image.astype(np.float32, copy=True),
            input_sequences=self.input_sequences,
            target=np.array([case.label], dtype=np.float32),
            mask=body_mask(case),
            gland=case.gland,
        )

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE with logits; pred (B, 1) logits, target (B, 1) or (B,) {0, 1}."""
        return F.binary_cross_entropy_with_logits(pred, target.reshape(pred.shape).to(pred.dtype))

    def evaluate(self, preds: list[np.ndarray], samples: list[Sample]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """preds: one logit per case, shape (1,) or ()."""
        if len(preds) != len(samples):
            raise ValueError(f"classification: {len(preds)} predictions for {len(samples)} samples")
        for p, s in zip(preds, samples):
            if np.asarray(p).size != 1:
                raise ValueError(f"classification, case {s.case_id}: expected one logit, got shape {np.shape(p)}")
        logits = np.array([float(np.asarray(p).reshape(-1)[0]) for p in preds])
        labels = np.array([int(s.target.reshape(-1)[0]) for s in samples])
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        predicted = (logits > 0).astype(int)
        metrics = {
            "auroc": auroc(labels, logits),
            "balanced_accuracy": balanced_accuracy(labels, predicted),
            "ap": average_precision(labels, logits),
        }
        rows = [
            {"case_id": s.case_id, "label": int(y), "logit": float(z), "probability": float(p), "predicted": int(c)}
            for s, y, z, p, c in zip(samples, labels, logits, probabilities, predicted)
        ]
        return metrics, rows
