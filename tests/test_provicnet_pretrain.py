"""ProViCNet pretraining: DINO pieces, patch-contrast pieces, and short runs of both stages."""
import math
import warnings

import numpy as np
import pytest
import torch

from taskalign.data.case import Case
from taskalign.pretrain import PRETRAINERS
from taskalign.encoders.provicnet import provicnet
from taskalign.optim import cosine_schedule
from taskalign.pretrain import dino as D
from taskalign.pretrain import views as V
from taskalign.pretrain.slices import SliceBank
from taskalign.pretrain.provicnet_recipe import pretrain_provicnet
from taskalign.pretrain.patch_contrast import contrastive_pairs, lesion_classes, patch_contrastive_loss
from taskalign.encoders.provicnet_heads import ProjectionHead, SegmentationUpsampler



def synthetic_case(i: int, shape=(8, 32, 32), lesion: bool = True, seed: int = 0) -> Case:
    """A gland-like ellipsoid in a body disc, a lesion blob of grade 1-3; contrasts differ by case."""
    rng = np.random.default_rng(seed * 1000 + i)
    d, h, w = shape
    z, y, x = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    cy, cx = h / 2 + rng.uniform(-3, 3), w / 2 + rng.uniform(-3, 3)
    ry, rx, rz = rng.uniform(0.2, 0.35) * h, rng.uniform(0.2, 0.35) * w, rng.uniform(0.3, 0.5) * d
    gland = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 + ((z - d / 2) / rz) ** 2 <= 1
    body = np.broadcast_to(((y - h / 2) / (0.45 * h)) ** 2 + ((x - w / 2) / (0.48 * w)) ** 2 <= 1, shape)
    les = np.zeros(shape, np.uint8)
    if lesion:
        ly, lx, lr = cy + rng.uniform(-0.4, 0.4) * ry, cx + rng.uniform(-0.4, 0.4) * rx, rng.uniform(0.35, 0.6) * min(ry, rx)
        blob = ((y - ly) / lr) ** 2 + ((x - lx) / lr) ** 2 + ((z - d / 2) / max(0.7 * rz, 1)) ** 2 <= 1
        les[blob & gland] = rng.integers(1, 4)
    t2 = 200 + 100 * body + rng.uniform(50, 250) * gland - 150 * (les >= 1)
    adc = 800 * body + rng.uniform(600, 1200) * gland - 700 * (les >= 1)
    dwi = 50 * body + 50 * gland + 200 * (les >= 1)
    img = np.stack([t2, dwi, adc]).astype(np.float32) * (1 + 0.05 * rng.standard_normal((3, *shape))).astype(np.float32)
    img[:, ~body] = 0
    return Case(f"synthetic{seed}_{i}", img, (4.0, 2.5, 2.5), gland=gland.astype(np.uint8),
                lesion=les if lesion else None)


# ---- patch contrast -------------------------------------------------------------------------

def test_contrastive_loss_is_zero_in_the_ideal_case():
    a = torch.randn(6, 16)
    ortho = torch.randn(3, 16)
    ortho = ortho - (ortho * a[3:]).sum(-1, keepdim=True) / a[3:].pow(2).sum(-1, keepdim=True) * a[3:]
    other = torch.cat([2.0 * a[:3], ortho])  # positives: same direction; negatives: cos 0 < margin
    positive = torch.tensor([True, True, True, False, False, False])
    assert patch_contrastive_loss(a, other, positive).abs() < 1e-6


def test_contrastive_loss_hand_example():
    anchor = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    other = torch.tensor([[1.0, 1.0], [0.8, 0.6], [0.3, 0.954]])
    positive = torch.tensor([True, False, False])
    # positive: 1 - cos 45° ; negatives: max(0, 0.8 - 0.5), max(0, cos - 0.5) = 0
    cos3 = 0.3 / math.hypot(0.3, 0.954)
    expected = ((1 - math.sqrt(0.5)) + 0.3 + max(0.0, cos3 - 0.5)) / 3
    assert abs(float(patch_contrastive_loss(anchor, other, positive)) - expected) < 1e-6
    assert float(patch_contrastive_loss(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.bool))) == 0.0


def test_contrastive_pairs_by_cancer_fraction():
    frac = torch.zeros(2, 4, 4)
    frac[0, 1, 1] = frac[0, 1, 2] = 1.0  # a lesion over two cells of slice 0
    frac[0, 2, 1] = 0.3                   # partly cancer: neither positive nor negative
    frac[1, 2, 2] = 1.0                   # a one-cell lesion in slice 1
    g = torch.Generator().manual_seed(0)
    anchor, other, positive = contrastive_pairs(frac, 0.9, 0.05, 30, g, "neighbourhood")
    assert positive.sum() == (~positive).sum() == 2  # 2 positives (the two cells of slice 0)
    for a, o, p in zip(anchor.tolist(), other.tolist(), positive.tolist()):
        assert frac[tuple(a)] >= 0.9 and max(abs(a[1] - o[1]), abs(a[2] - o[2])) == 1 and a[0] == o[0]
        assert (frac[tuple(o)] >= 0.9) if p else (frac[tuple(o)] <= 0.05)
    anchor, other, positive = contrastive_pairs(frac, 0.9, 0.05, 30, g, "batch")
    assert positive.sum() == 6  # 3 anchors, every ordered pair of them
    assert len(contrastive_pairs(frac, 0.9, 0.05, 1, g, "batch")[2]) == 2  # capped at max_pairs each
    assert len(contrastive_pairs(torch.zeros(1, 4, 4), 0.9, 0.05, 30, g)[2]) == 0


def test_lesion_classes():
    case = synthetic_case(0)
    case.lesion[:] = 0
    case.lesion[0, 0, :4] = [1, 2, 3, 5]
    classes = lesion_classes(case)
    assert classes[0, 0, :4].tolist() == [2, 3, 3, 3]
    assert set(np.unique(classes[case.lesion == 0])) <= {0, 1}


def test_heads_published_key_names_and_shapes():
    cl_head = ProjectionHead(384, 65536, 2048, 256)
    shapes = {k: tuple(v.shape) for k, v in cl_head.state_dict().items()}
    assert shapes == {
        "mlp.0.weight": (2048, 384), "mlp.0.bias": (2048,), "mlp.2.weight": (2048, 2048), "mlp.2.bias": (2048,),
        "mlp.4.weight": (256, 2048), "mlp.4.bias": (256,),
        "last_layer.weight_g": (65536, 1), "last_layer.weight_v": (65536, 256),
    }
    out = cl_head(torch.randn(3, 384))
    assert out.shape == (3, 65536) and out.abs().max() <= 1 + 1e-5  # unit input, unit prototypes
    seg = SegmentationUpsampler(96, 4, (64, 32))
    assert seg(torch.randn(2, 96, 4, 4), (32, 32)).shape == (2, 4, 32, 32)
    assert {k.split(".")[1] for k in seg.state_dict()} == {"1", "2", "5", "6", "9"}


# ---- DINO -----------------------------------------------------------------------------------

def test_dino_loss_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    student, teacher, center = torch.randn(8, 5, generator=g), torch.randn(4, 5, generator=g), torch.randn(5, generator=g)
    pt = torch.softmax((teacher - center) / 0.04, -1).chunk(2)
    ls = torch.log_softmax(student / 0.1, -1).chunk(4)
    pairs = [-(pt[i] * ls[j]).sum(-1).mean() for i in range(2) for j in range(4) if i != j]
    torch.testing.assert_close(D.dino_loss(student, teacher, center, 2, 0.04, 0.1), torch.stack(pairs).mean())


def test_sinkhorn_equipartition():
    q = D.sinkhorn_knopp(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), 0.5, n_iter=200)
    torch.testing.assert_close(q.sum(1), torch.ones(16))
    torch.testing.assert_close(q.sum(0), torch.full((8,), 2.0), rtol=1e-3, atol=1e-3)


def test_koleo_prefers_spread_features():
    spread = torch.eye(4)
    bunched = torch.ones(4, 4) + 0.01 * torch.eye(4)
    assert D.koleo_loss(spread) < D.koleo_loss(bunched)


def test_augmentations_keep_shapes_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 32, 32)
    crop = V.random_resized_crop(x, 16, (0.1, 0.4), g)
    assert crop.shape == (5, 3, 16, 16) and crop.min() >= x.min() - 1e-5 and crop.max() <= x.max() + 1e-5
    assert V.intensity_jitter(x, g).shape == x.shape
    assert V.local_view_size(32, 8) == 16 and V.local_view_size(448, 14) == 196


def test_cosine_schedule():
    assert cosine_schedule(0, 100, 1.0, 0.0) == 1.0 and abs(cosine_schedule(100, 100, 1.0, 0.0)) < 1e-12
    assert cosine_schedule(0, 100, 1.0, 0.0, warmup_steps=10) == pytest.approx(0.1)


def _pooled(enc, cases):
    x = torch.stack([torch.from_numpy(enc.preprocess(c.image, ("t2w", "dwi", "adc"), c.gland)) for c in cases])
    with torch.no_grad():
        return enc.eval()(x)["pooled"]


def test_dino_does_not_collapse():
    cases = [synthetic_case(i) for i in range(6)]
    probes = [synthetic_case(i, seed=7) for i in range(6)]
    torch.manual_seed(0)
    enc = provicnet("micro")
    spread_before = _pooled(enc, probes).std(0).mean()
    bank = SliceBank.from_cases(enc, cases)
    out = D.train_dino(enc.train(), bank, 80, 2, 1e-3, torch.Generator().manual_seed(0), D.dino_config("micro"))
    assert all(math.isfinite(v) for v in out.losses) and len(out.losses) == 80
    spread_after = _pooled(enc, probes).std(0).mean()
    assert spread_after > 0.05 and spread_after > 3 * spread_before
    probe = bank.draw(6, 3, torch.Generator().manual_seed(99))
    m = D.collapse_metrics(D.teacher_probabilities(out.teacher, probe, out.center, 0.04))
    assert m["entropy"] < m["log_k"] - 0.2                  # not uniform
    assert m["entropy_of_mean"] - m["entropy"] > 0.2         # outputs depend on the input
    assert m["distinct_argmax"] >= 3                         # not one prototype for every slice


# ---- the registered two-stage pretraining -----------------------------------------------------

def test_registered():
    assert PRETRAINERS.get("provicnet") is pretrain_provicnet


def test_stage2_loss_decreases_and_is_seeded():
    cases = [synthetic_case(i) for i in range(6)] + [synthetic_case(9, lesion=False)]
    torch.manual_seed(0)
    enc = provicnet("micro", input_sequences=("t2w", "adc"))
    steps = []
    losses = pretrain_provicnet(enc, cases, 24, 2, 2e-3, seed=3, stage1_fraction=0.0,
                                progress=lambda step, loss: steps.append(step))
    assert steps == list(range(24)) and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(pretrain_provicnet(provicnet("micro"), cases[:3], 4, 1, 1e-3, seed=5, stage1_fraction=0.5))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_both_stages_run_and_without_lesions_stage1_takes_every_step():
    cases = [synthetic_case(i) for i in range(3)]
    torch.manual_seed(0)
    seen = []
    losses = pretrain_provicnet(provicnet("micro"), cases, 5, 1, 1e-3, seed=0, progress=lambda s, l: seen.append(s))
    assert len(losses) == 5 and seen == [0, 1, 2, 3, 4]
    unlabelled = [synthetic_case(i, lesion=False) for i in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(pretrain_provicnet(provicnet("micro"), unlabelled, 3, 1, 1e-3, seed=0)) == 3
    assert any("stage 2 is skipped" in str(w.message) for w in caught)


def test_non_finite_loss_stops_with_a_clear_error():
    case = synthetic_case(0)
    case.image[0, :, 8:24, 8:24] = np.nan
    with pytest.raises(FloatingPointError, match="stage 1 \\(DINO\\).*NaN/Inf"):
        pretrain_provicnet(provicnet("micro", input_sequences=("t2w",)), [case], 2, 1, 1e-3, seed=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ProViCNetEncoder"):
        pretrain_provicnet(torch.nn.Linear(2, 2), [synthetic_case(0)], 2, 1, 1e-3, seed=0)
    with pytest.raises(ValueError, match="steps >= 1"):
        pretrain_provicnet(provicnet("micro"), [synthetic_case(0)], 0, 1, 1e-3, seed=0)
