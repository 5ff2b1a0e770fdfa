"""ProViCNet's published per-sequence files: exact keys, strict loading, per-sequence backbones,
token order and position resizing at the paper size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taskalign import SEQUENCES, create_encoder
from taskalign.encoders.provicnet_per_sequence import ProViCNetPerSequence
from taskalign.encoders.weights import CheckpointMismatch
from taskalign.encoders.weights.provicnet import PublishedProViCNet, sequence_files


def _one_sequence(seq: str, size: str = "micro", seed: int = 0):
    torch.manual_seed(seed)
    return create_encoder("provicnet", size=size, input_sequences=(seq,), sequence_token=False).eval()


def _write_published(enc, path) -> dict:
    state = PublishedProViCNet(enc).state_dict()
    torch.save(state, path)  # published files are plain state dicts
    return state


def _paper_head_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i, (c_in, c_out) in zip((1, 5, 9), ((384, 128), (128, 64), (64, 4))):
        shapes |= {f"head.segmentation_conv.{i}.weight": (c_out, c_in, 3, 3), f"head.segmentation_conv.{i}.bias": (c_out,)}
    for i, c in ((2, 128), (6, 64)):
        shapes |= {f"head.segmentation_conv.{i}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
        shapes[f"head.segmentation_conv.{i}.num_batches_tracked"] = ()
    for i, (c_in, c_out) in zip((0, 2, 4), ((384, 2048), (2048, 2048), (2048, 256))):
        shapes |= {f"CL_Head.mlp.{i}.weight": (c_out, c_in), f"CL_Head.mlp.{i}.bias": (c_out,)}
    return shapes | {"CL_Head.last_layer.weight_g": (65536, 1), "CL_Head.last_layer.weight_v": (65536, 256)}


def test_published_paper_layout_key_for_key():
    with torch.device("meta"):
        enc = create_encoder("provicnet", size="paper", input_sequences=("t2w",), sequence_token=False)
        published = PublishedProViCNet(enc)
    shapes = {k: tuple(v.shape) for k, v in published.state_dict().items()}
    encoder_keys = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert shapes == encoder_keys | _paper_head_shapes()
    assert shapes["backbone.pos_embed"] == (1, 1370, 384) and shapes["backbone.register_tokens"] == (1, 4, 384)
    assert {k.split(".")[0] for k in shapes} == {"backbone", "axis_pos", "axis_max", "head", "CL_Head"}


def test_per_sequence_paper_model_keys():
    with torch.device("meta"):
        one = create_encoder("provicnet", size="paper", input_sequences=("t2w",), sequence_token=False)
        per_seq = create_encoder("provicnet", size="paper", per_sequence=True)
    single = {k: tuple(v.shape) for k, v in one.state_dict().items()}
    expected = {f"sequences.{s}.{k}": v for s in SEQUENCES for k, v in single.items()}
    assert {k: tuple(v.shape) for k, v in per_seq.state_dict().items()} == expected
    assert per_seq.pooled_dim == 3 * 384 and [m.stride for m in per_seq.feature_info] == [(1, 14, 14)] * 4


def test_paper_tokens_positions_and_heads_at_448():
    enc = _one_sequence("t2w", "paper")
    published = PublishedProViCNet(enc).eval()
    captured = {}
    run_blocks = enc.backbone.run_blocks

    def spy(tokens, collect=()):
        captured["tokens"] = tokens
        return run_blocks(tokens, collect)

    enc.backbone.run_blocks = spy
    images, index, count = torch.randn(1, 3, 448, 448), torch.tensor([3.0]), torch.tensor([20.0])
    with torch.no_grad():
        logits = published.segment(enc, images, index, count)
        tokens = captured["tokens"]
        bb = enc.backbone
        stored = bb.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
        resized = F.interpolate(stored, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
        patches = bb.patch_embed(images) + resized.permute(0, 2, 3, 1).reshape(1, 1024, 384)
        assert logits.shape == (1, 4, 256, 256)
        assert tokens.shape == (1, 1 + 4 + 2 + 1024, 384)                 # [cls, 4 reg, index, count, patches]
        torch.testing.assert_close(tokens[:, 0], bb.cls_token[:, 0] + bb.pos_embed[:, 0])
        torch.testing.assert_close(tokens[:, 1:5], bb.register_tokens)
        torch.testing.assert_close(tokens[:, 5], enc.axis_pos(index[:, None]))
        torch.testing.assert_close(tokens[:, 6], enc.axis_max(count[:, None]))
        torch.testing.assert_close(tokens[:, 7:], patches)
        embedding = published.CL_Head.embed(torch.randn(2, 384))
        assert published.CL_Head(torch.randn(2, 384)).shape == (2, 65536)
        torch.testing.assert_close(embedding.norm(dim=-1), torch.ones(2))


def test_three_published_files_give_three_backbones_and_identical_outputs(tmp_path):
    originals = {s: _one_sequence(s, seed=i) for i, s in enumerate(("t2w", "adc", "dwi"))}
    for seq, name in (("t2w", "T2.pth"), ("adc", "ADC.pth"), ("dwi", "DWI.pth")):
        _write_published(originals[seq], tmp_path / name)
    spec = ",".join(str(tmp_path / n) for n in ("T2.pth", "ADC.pth", "DWI.pth"))
    loaded = create_encoder("provicnet", size="micro", input_sequences=SEQUENCES, weights=spec).eval()
    assert isinstance(loaded, ProViCNetPerSequence) and list(loaded.sequences) == list(SEQUENCES)
    assert loaded.pooled_dim == 3 * 96 and loaded.feature_info[0].channels == 3 * 96
    x = torch.randn(2, 3, 5, 48, 48)
    with torch.no_grad():
        out = loaded(x, torch.tensor([0, 2, 4]))
        refs = [originals[s](x[:, i : i + 1], torch.tensor([0, 2, 4])) for i, s in enumerate(SEQUENCES)]
    assert torch.equal(out["pooled"], torch.cat([r["pooled"] for r in refs], dim=1))
    for k in range(4):
        assert torch.equal(out["maps"][k], torch.cat([r["maps"][k] for r in refs], dim=1))
    for seq in SEQUENCES:  # each sequence got its own file's backbone
        assert torch.equal(loaded.sequences[seq].backbone.pos_embed, originals[seq].backbone.pos_embed)


def test_a_task_with_fewer_sequences_uses_only_their_files(tmp_path):
    originals = {s: _one_sequence(s, seed=i) for i, s in enumerate(("t2w", "adc"))}
    _write_published(originals["t2w"], tmp_path / "a.pth")
    _write_published(originals["adc"], tmp_path / "b.pth")
    loaded = create_encoder("provicnet", size="micro", input_sequences=("t2w",),
                            weights={"t2w": tmp_path / "a.pth", "adc": tmp_path / "b.pth"})
    assert list(loaded.sequences) == ["t2w"] and loaded.pooled_dim == 96
    assert torch.equal(loaded.sequences["t2w"].axis_pos.weight, originals["t2w"].axis_pos.weight)


def test_preprocess_matches_the_shared_encoder():
    import numpy as np

    per_seq = create_encoder("provicnet", size="micro", input_sequences=("adc", "t2w"), per_sequence=True)
    shared = create_encoder("provicnet", size="micro", input_sequences=("adc", "t2w"))
    image = np.random.default_rng(0).uniform(100, 2000, (3, 4, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(per_seq.preprocess(image, SEQUENCES, None), shared.preprocess(image, SEQUENCES, None))


def test_which_file_is_which_sequence(tmp_path):
    files = {n: tmp_path / n for n in ("ProViCNet_T2.pth", "adc_model.pth", "hbv.pth", "model.pth")}
    named = sequence_files(",".join(str(files[n]) for n in ("ProViCNet_T2.pth", "adc_model.pth", "hbv.pth")), SEQUENCES)
    assert named == {"t2w": files["ProViCNet_T2.pth"], "dwi": files["hbv.pth"], "adc": files["adc_model.pth"]}
    assert sequence_files(f"dwi:{files['model.pth']}", ("dwi",)) == {"dwi": files["model.pth"]}
    assert sequence_files(str(files["model.pth"]), ("adc",)) == {"adc": files["model.pth"]}  # one file, one sequence
    with pytest.raises(ValueError, match="write it as t2w:"):
        sequence_files(f"{files['model.pth']},{files['hbv.pth']}", ("t2w", "dwi"))
    with pytest.raises(ValueError, match=r"no file for sequence\(s\) \['adc'\]"):
        sequence_files(f"{files['ProViCNet_T2.pth']}", ("t2w", "adc"))
    with pytest.raises(ValueError, match="two files for sequence 't2w'"):
        sequence_files(f"t2w:{files['model.pth']},{files['ProViCNet_T2.pth']}", ("t2w",))


def test_published_files_load_strictly(tmp_path):
    state = _write_published(_one_sequence("t2w"), tmp_path / "T2.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("CL_Head.")}, tmp_path / "T2_nohead.pth")
    with pytest.raises(CheckpointMismatch, match="CL_Head.last_layer.weight_g") as info:
        create_encoder("provicnet", size="micro", input_sequences=("t2w",), weights=tmp_path / "T2_nohead.pth")
    assert len(info.value.report.missing) == 8 and not info.value.report.unexpected
    torch.save(state | {"backbone.pos_embed": torch.zeros(1, 50, 96)}, tmp_path / "T2_pos.pth")
    with pytest.raises(CheckpointMismatch, match=r"backbone.pos_embed: file \(1, 50, 96\) vs model \(1, 37, 96\)"):
        create_encoder("provicnet", size="micro", input_sequences=("t2w",), weights=tmp_path / "T2_pos.pth")
    with pytest.raises(CheckpointMismatch, match="fits size 'micro'"):
        create_encoder("provicnet", size="tiny", input_sequences=("t2w",), weights=tmp_path / "T2.pth")


def test_in_house_shared_backbone_file_still_loads(tmp_path):
    from taskalign import io

    torch.manual_seed(1)
    original = create_encoder("provicnet", size="micro").eval()
    io.save_weights(tmp_path / "weights.safetensors", original.state_dict())
    loaded = create_encoder("provicnet", size="micro", input_sequences=("t2w", "adc"),
                            weights=tmp_path / "weights.safetensors").eval()
    assert type(loaded).__name__ == "ProViCNetEncoder" and loaded.seq_embed is not None
    x = torch.randn(1, 3, 3, 48, 48)
    with torch.no_grad():
        ref = create_encoder("provicnet", size="micro", input_sequences=("t2w", "adc"))
        ref.load_state_dict(original.state_dict())
        assert torch.equal(loaded.eval()(x[:, :2])["pooled"], ref.eval()(x[:, :2])["pooled"])
