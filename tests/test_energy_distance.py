"""Energy distance (align/energy.py): the exact U-statistics against direct loops, and its properties."""
import itertools

import numpy as np
import pytest
import torch

from taskalign.align import energy_distance
from taskalign.errors import InputError


def feats(n, d, seed, scale=1.0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def loop_paired(x, y):
    """1/(n(n−1)) Σ_{i≠j} ‖x_i−y_j‖ + ‖x_j−y_i‖ − ‖x_i−x_j‖ − ‖y_i−y_j‖, one pair at a time."""
    x, y = x.numpy(), y.numpy()
    n = len(x)
    total = 0.0
    for i, j in itertools.permutations(range(n), 2):
        total += (np.linalg.norm(x[i] - y[j]) + np.linalg.norm(x[j] - y[i])
                  - np.linalg.norm(x[i] - x[j]) - np.linalg.norm(y[i] - y[j]))
    return total / (n * (n - 1))


def loop_unpaired(x, y):
    x, y = x.numpy(), y.numpy()
    m, n = len(x), len(y)
    across = sum(np.linalg.norm(a - b) for a in x for b in y) / (m * n)
    wx = sum(np.linalg.norm(x[i] - x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    wy = sum(np.linalg.norm(y[i] - y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    return 2 * across - wx - wy


@pytest.mark.parametrize("n,d", [(2, 1), (5, 3), (9, 4)])
def test_paired_energy_distance_matches_the_double_loop(n, d):
    x, y = feats(n, d, 1), feats(n, d, 2) + 0.5
    assert energy_distance(x, y) == pytest.approx(loop_paired(x, y), rel=1e-10, abs=1e-12)


def test_unpaired_energy_distance_matches_the_double_loop():
    x, y = feats(6, 3, 3), feats(8, 3, 4, scale=2.0)
    assert energy_distance(x, y, paired=False) == pytest.approx(loop_unpaired(x, y), rel=1e-10)


def test_zero_for_identical_sets_and_float32_input():
    x = feats(20, 6, 5)
    assert abs(energy_distance(x, x.clone())) < 1e-10
    assert abs(energy_distance(x.float(), x.float())) < 1e-6
    assert abs(energy_distance(x.numpy(), x.numpy())) < 1e-10


def test_invariant_to_a_common_translation_and_rotation():
    x, y = feats(15, 5, 6), feats(15, 5, 7) + 0.3
    q, _ = torch.linalg.qr(feats(5, 5, 8))            # an orthogonal 5 × 5 map
    shift = 100.0 * feats(1, 5, 9)
    base = energy_distance(x, y)
    assert energy_distance(x + shift, y + shift) == pytest.approx(base, rel=1e-8)
    assert energy_distance(x @ q, y @ q) == pytest.approx(base, rel=1e-8)


def test_grows_with_a_shift_and_without_a_ceiling():
    x = feats(30, 4, 10)
    values = [energy_distance(x, x + s) for s in (0.0, 0.5, 2.0, 10.0, 100.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-10)
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] > 100.0        # about 2 × the shift: no saturation far apart


def test_bad_inputs_raise():
    with pytest.raises(InputError, match="one row per pair"):
        energy_distance(feats(5, 2, 1), feats(6, 2, 2))
    with pytest.raises(InputError, match="at least 2 rows"):
        energy_distance(feats(1, 2, 1), feats(1, 2, 2))
    with pytest.raises(InputError, match="features per row"):
        energy_distance(feats(5, 2, 1), feats(5, 3, 2), paired=False)
