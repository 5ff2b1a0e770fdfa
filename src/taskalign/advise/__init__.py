"""Transferability estimators on frozen features, and `taskalign advise`, which ranks candidate
encoders or checkpoints for a task before any fine-tuning (DESIGN.md §11).

Library functions on numpy arrays (features (n, d), labels (n,) class ids or (n, k) targets):

    from taskalign.advise import logme, h_score, linear_probe_score, knn_score, drift_proxy
    logme(features, labels)                         # You et al. 2021, larger is better
    logme(features, targets, regression=True)
    h_score(features, labels)                       # Bao et al. 2019, larger is better
    linear_probe_score(features, labels, groups)    # out-of-fold AUROC or R², folds by case
    knn_score(features, labels, groups)             # out-of-fold balanced accuracy or R²
    drift_proxy(target_features, reference_features)  # MMD² to the pretraining cohort, smaller is better

Each estimator's equation is in its module's docstring; `advise.py` runs them all on candidates.
"""
from taskalign.advise.bootstrap import Interval, case_bootstrap
from taskalign.advise.drift_proxy import drift_proxy
from taskalign.advise.hscore import h_score
from taskalign.advise.logme import log_evidence, logme, max_evidence
from taskalign.advise.probes import OutOfFold, knn_probe, knn_score, linear_probe, linear_probe_score

__all__ = ["logme", "log_evidence", "max_evidence", "h_score", "linear_probe", "linear_probe_score", "knn_probe",
           "knn_score", "OutOfFold", "drift_proxy", "case_bootstrap", "Interval"]
