"""Study statistics (DESIGN.md §6): correlations with n, permutation p-values and bootstrap
intervals, seed means with t intervals, paired per-case comparisons, and the within-task
sign-agreement test."""
from taskalign.stats.correlation import CorrelationResult, correlation, pearson, spearman
from taskalign.stats.intervals import SeedStats, seed_stats
from taskalign.stats.paired import PairedComparison, paired_comparison
from taskalign.stats.signtest import SignAgreement, sign_agreement, sign_test_p_value

__all__ = ["CorrelationResult", "correlation", "pearson", "spearman",
           "SeedStats", "seed_stats", "PairedComparison", "paired_comparison",
           "SignAgreement", "sign_agreement", "sign_test_p_value"]
