import math

from taskalign.study.analysis.outcomes import common_target, epochs_to_target, relative_gain, self_convergence_epoch


def test_relative_gain_matches_definition():
    assert relative_gain(0.9, 0.75) == 100 * (0.9 - 0.75) / 0.75
    assert relative_gain(0.6, 0.75) < 0
    # lower-is-better: a smaller value is a positive gain
    assert relative_gain(1.0, 2.0, higher_is_better=False) == 50.0
    assert relative_gain(-1.0, -2.0) == 50.0          # |M_spec| in the denominator
    assert math.isnan(relative_gain(0.5, 0.0))
    assert math.isnan(relative_gain(float("nan"), 0.5))


def test_convergence_first_epoch_and_censoring():
    curve = [0.2, 0.5, 0.78, 0.8, 0.81]
    target = common_target([0.81, 0.9], higher_is_better=True)    # 95 % of 0.9 = 0.855
    assert math.isclose(target, 0.855)
    assert epochs_to_target(curve, target) == (5, True)             # never reached: censored at last epoch
    assert epochs_to_target(curve, common_target([0.81])) == (3, False)  # 0.7695 first reached at epoch 3
    assert epochs_to_target([float("nan"), 0.9], 0.5) == (2, False)


def test_convergence_lower_is_better():
    target = common_target([2.0, 4.0], higher_is_better=False)
    assert math.isclose(target, 2.0 / 0.95)
    assert epochs_to_target([5.0, 3.0, 2.1], target, higher_is_better=False) == (3, False)


def test_self_convergence_uses_own_range():
    # from 0 to best 1.0: 95 % of the way is 0.95, first reached at epoch 4
    assert self_convergence_epoch([0.0, 0.5, 0.9, 0.96, 1.0]) == 4
    assert self_convergence_epoch([10.0, 8.0, 5.0], higher_is_better=False) == 3
