"""D2P through the real encoders: an unchanged encoder has D2P ≈ 0; a changed one clearly > 0."""
import pytest
import torch

from taskalign.align.drift import drift, reference_kernel
from taskalign.data.case import SEQUENCES
from taskalign.data.phantom import make_cohort
from taskalign.encoders import create_encoder
from taskalign.study.cell import pooled_features


@pytest.mark.parametrize("name", ["profound_conv", "provicnet"])
def test_unchanged_encoder_has_zero_d2p_and_a_changed_one_does_not(name):
    torch.manual_seed(0)
    cases = make_cohort(12, seed=5, cohort="downstream", shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))
    encoder = create_encoder(name, size="micro")
    inputs = [encoder.preprocess(c.image, SEQUENCES, c.gland) for c in cases]
    before = pooled_features(encoder, inputs)
    kernel = reference_kernel(before)
    same = drift(pooled_features(encoder, inputs), before, kernel, permutations=200, seed=0)
    assert abs(same.mmd2) < 1e-6
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.5 * p.std().nan_to_num(0.1) * torch.randn_like(p))
    moved = drift(pooled_features(encoder, inputs), before, kernel, permutations=200, seed=0)
    assert moved.mmd2 > 0.05 and moved.p_value < 0.05
