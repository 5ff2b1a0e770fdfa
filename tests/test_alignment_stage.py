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


def test_stage_features_and_layer_profile(tmp_path):
    """One forward gives the pooled features and a spatial mean per stage; an unchanged encoder
    has D2P ≈ 0 at every stage, a perturbed one does not."""
    from taskalign.study.alignment import layer_profile
    from taskalign.study.cell import probe_features, save_probe_features

    torch.manual_seed(0)
    cases = make_cohort(10, seed=6, cohort="downstream", shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))
    encoder = create_encoder("profound_conv", size="micro")
    inputs = [encoder.preprocess(c.image, SEQUENCES, c.gland) for c in cases]
    pooled, stages = probe_features(encoder, inputs)
    assert torch.equal(pooled, pooled_features(encoder, inputs))
    maps = encoder.forward_features(torch.from_numpy(inputs[0][None]).float())["maps"]
    assert [s.shape for s in stages] == [(10, m.shape[1]) for m in maps]
    save_probe_features(tmp_path, "pretrained", encoder, inputs)
    save_probe_features(tmp_path, "finetuned", encoder, inputs)
    same = layer_profile(tmp_path, stages)
    assert [layer["stage"] for layer in same] == list(range(len(maps)))
    assert all(abs(layer["d2p"]) < 1e-6 and layer["cka_pretrained"] > 0.999 for layer in same)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.5 * p.std().nan_to_num(0.1) * torch.randn_like(p))
    save_probe_features(tmp_path, "finetuned", encoder, inputs)
    assert all(layer["d2p"] > 0.01 for layer in layer_profile(tmp_path, stages))
    assert layer_profile(tmp_path / "missing", stages) == []


def test_saturation_note_names_the_saturated_cells_only():
    from taskalign.study.analysis.results import saturation_note

    def row(encoder, task, d2p, d2r, d2s):
        return {"encoder": encoder, "task": task, "n_train": 16, "seed": 0, "d2p_saturation": d2p, "d2r_saturation": d2r,
                "d2s_saturation": d2s}
    rows = [row("provicnet", "synthesis", 0.97, 0.85, float("nan")), row("profound_conv", "synthesis", 0.3, 0.5, 0.6),
            row("provicnet", "segmentation", 0.95, 0.93, 0.91)]
    note = saturation_note(rows)
    assert "provicnet/synthesis/n16/seed0 D2P;" in note and "provicnet/segmentation/n16/seed0 D2P,D2R,D2S" in note
    assert "profound_conv" not in note
    assert saturation_note(rows[1:2]) is None
