"""Study statistics (DESIGN.md §6): correlations with n, permutation p-values and bootstrap
intervals, and the within-task sign-agreement test."""
from taskalign.stats.correlation import CorrelationResult, correlation, pearson, spearman
from taskalign.stats.signtest import SignAgreement, sign_agreement, sign_test_p_value

__all__ = ["CorrelationResult", "correlation", "pearson", "spearman",
           "SignAgreement", "sign_agreement", "sign_test_p_value"]
