"""The 2.5D ProViCNet encoder: feature contract, token layout, paper-size keys, preprocessing."""
import numpy as np
import pytest
import torch

from taskalign.encoders.base import MapInfo, create_encoder
from taskalign.encoders.provicnet import ProViCNetEncoder, neighbour_stack, provicnet, zscore_in_mask



def _micro(seqs=("t2w", "dwi", "adc"), **kw) -> ProViCNetEncoder:
    torch.manual_seed(0)
    return provicnet("micro", input_sequences=seqs, **kw)


@pytest.mark.parametrize("seqs", [("t2w",), ("t2w", "dwi", "adc")])
@pytest.mark.parametrize("slices", [None, torch.tensor([0, 3, 7])])
def test_feature_shapes(seqs, slices):
    enc = _micro(seqs).eval()
    b, c, d = 2, len(seqs), 8
    out = enc.forward_features(torch.randn(b, c, d, 32, 32), slices)
    s = d if slices is None else 3
    assert out["pooled"].shape == (b, 96 * c) and enc.pooled_dim == 96 * c
    assert len(out["maps"]) == len(enc.feature_info) == 4
    for m, info in zip(out["maps"], enc.feature_info):
        assert m.shape == (b, 96 * c, s, 4, 4)
        assert info == MapInfo(96 * c, (1, 8, 8))
    assert enc.spatial_dims == 2 and enc.family == "provicnet"


def test_registered_factory():
    enc = create_encoder("provicnet", size="micro", input_sequences=("adc",))
    assert isinstance(enc, ProViCNetEncoder) and enc.input_sequences == ("adc",)


def test_slices_match_the_full_volume():
    """Computing only some slices reads their neighbours from the full volume: same maps."""
    enc = _micro().eval()
    x = torch.randn(1, 3, 6, 32, 32)
    with torch.no_grad():
        full = enc(x)
        part = enc(x, torch.tensor([0, 4, 5]))
    for m_full, m_part in zip(full["maps"], part["maps"]):
        torch.testing.assert_close(m_part, m_full[:, :, [0, 4, 5]], rtol=1e-4, atol=1e-5)


def test_neighbour_stack_repeats_the_border():
    x = torch.arange(5.0).view(1, 1, 5, 1, 1).expand(1, 1, 5, 2, 2)
    stack = neighbour_stack(x, torch.tensor([0, 2, 4]))  # (1, 1, 3, 3, 2, 2)
    assert stack[0, 0, :, :, 0, 0].tolist() == [[0, 0, 1], [1, 2, 3], [3, 4, 4]]


def _captured_tokens(enc, images, index, count, seq):
    captured = {}
    run_blocks = enc.backbone.run_blocks

    def spy(tokens, collect=()):
        captured["tokens"] = tokens
        return run_blocks(tokens, collect)

    enc.backbone.run_blocks = spy
    enc.encode_slices(images, index, count, seq)
    return captured["tokens"]


def test_token_order_and_count():
    enc = _micro().eval()
    images = torch.randn(2, 3, 32, 32)
    index, count, seq = torch.tensor([2.0, 5.0]), torch.tensor([8.0, 8.0]), torch.tensor([0, 2])
    with torch.no_grad():
        tokens = _captured_tokens(enc, images, index, count, seq)
    assert enc.num_prefix_tokens == 8
    assert tokens.shape == (2, 1 + 4 + 1 + 1 + 1 + 16, 96)
    bb = enc.backbone
    torch.testing.assert_close(tokens[:, 1:5], bb.register_tokens.expand(2, -1, -1))
    torch.testing.assert_close(tokens[:, 5], enc.axis_pos(index[:, None]))
    torch.testing.assert_close(tokens[:, 6], enc.axis_max(count[:, None]))
    torch.testing.assert_close(tokens[:, 7], enc.seq_embed(seq))
    assert _micro(sequence_token=False).num_prefix_tokens == 7


def test_slice_tokens_change_the_output():
    """A volume constant along z gives the same 2.5D input for every slice: only the slice-index
    token tells the slices apart; the slice-count token changes the output too. (At random init
    the patch tokens barely attend to these tokens: the maps move by ~1e-4, float32 noise is ~1e-7.)"""
    enc = _micro(("t2w",)).eval()
    x = torch.randn(1, 1, 1, 32, 32).expand(1, 1, 6, 32, 32).contiguous()
    with torch.no_grad():
        ref = enc(x, torch.tensor([1, 4]))
        assert (ref["maps"][-1][:, :, 0] - ref["maps"][-1][:, :, 1]).abs().max() > 2e-5
        longer = enc(torch.cat([x, x], dim=2), torch.tensor([1, 4]))  # same slices, D = 12
        assert (longer["maps"][-1] - ref["maps"][-1]).abs().max() > 2e-5
        assert (longer["pooled"] - ref["pooled"]).abs().max() > 1e-3
        for layer in (enc.axis_pos, enc.axis_max):
            layer.weight.zero_(), layer.bias.zero_()
        maps = enc(x)["maps"][-1]
    torch.testing.assert_close(maps[:, :, 0], maps[:, :, 5])


def test_sequence_token_tells_sequences_apart():
    enc = _micro(("t2w", "adc")).eval()
    x = torch.randn(1, 1, 4, 32, 32).expand(1, 2, 4, 32, 32)  # the same image as both sequences
    with torch.no_grad():
        pooled = enc(x)["pooled"]
    assert (pooled[:, :96] - pooled[:, 96:]).abs().max() > 1e-3


def test_every_parameter_receives_a_gradient():
    enc = _micro().train()
    x = torch.randn(2, 3, 8, 32, 32)
    out = enc(x, torch.tensor([1, 6]))
    gen = torch.Generator().manual_seed(0)
    # random weights: a plain sum of LayerNorm outputs has no gradient
    loss = (out["pooled"] * torch.randn(out["pooled"].shape, generator=gen)).sum()
    loss = loss + sum((m * torch.randn(m.shape, generator=gen)).mean() for m in out["maps"])
    loss.backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient: {missing}"


def test_input_size_other_than_the_stored_grid():
    enc = _micro(("t2w",)).eval()  # positions stored for 48 px (6 x 6); 32 px and 64 px resize them
    for side in (32, 48, 64):
        assert enc(torch.randn(1, 1, 2, side, side))["maps"][0].shape[-2:] == (side // 8, side // 8)


def test_paper_keys_and_shapes():
    torch.manual_seed(0)
    enc = provicnet("paper", input_sequences=("t2w",), sequence_token=False)
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    expected = {
        "backbone.cls_token": (1, 1, 384), "backbone.pos_embed": (1, 1370, 384),
        "backbone.register_tokens": (1, 4, 384), "backbone.mask_token": (1, 384),
        "backbone.patch_embed.proj.weight": (384, 3, 14, 14), "backbone.patch_embed.proj.bias": (384,),
        "backbone.norm.weight": (384,), "backbone.norm.bias": (384,),
        "axis_pos.weight": (384, 1), "axis_pos.bias": (384,), "axis_max.weight": (384, 1), "axis_max.bias": (384,),
    }
    block = {
        "norm1.weight": (384,), "norm1.bias": (384,), "attn.qkv.weight": (1152, 384), "attn.qkv.bias": (1152,),
        "attn.proj.weight": (384, 384), "attn.proj.bias": (384,), "ls1.gamma": (384,),
        "norm2.weight": (384,), "norm2.bias": (384,), "mlp.fc1.weight": (1536, 384), "mlp.fc1.bias": (1536,),
        "mlp.fc2.weight": (384, 1536), "mlp.fc2.bias": (384,), "ls2.gamma": (384,),
    }
    for i in range(12):
        expected.update({f"backbone.blocks.{i}.{k}": v for k, v in block.items()})
    assert shapes == expected
    assert _micro().state_dict()["seq_embed.weight"].shape == (3, 96)  # one row per SEQUENCES entry
    x = torch.randn(1, 1, 2, 224, 224)
    with torch.no_grad():
        out = enc(x, torch.tensor([1]))
    assert out["pooled"].shape == (1, 384) and out["maps"][0].shape == (1, 384, 1, 16, 16)


def test_preprocess_selects_channels_and_zscores_in_the_gland():
    enc = _micro(("adc", "t2w"))
    rng = np.random.default_rng(0)
    image = rng.uniform(100, 2000, (3, 4, 16, 16)).astype(np.float32)
    gland = np.zeros((4, 16, 16), np.uint8)
    gland[1:3, 4:12, 4:12] = 1
    out = enc.preprocess(image, ("t2w", "dwi", "adc"), gland)
    assert out.shape == (2, 4, 16, 16) and out.dtype == np.float32
    for ch, src in ((0, 2), (1, 0)):  # adc first, then t2w
        inside = out[ch][gland > 0]
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-3
        ref = (image[src] - image[src][gland > 0].mean()) / image[src][gland > 0].std()
        np.testing.assert_allclose(out[ch], ref, rtol=1e-4, atol=1e-4)


def test_zscore_without_gland_uses_non_zero_voxels():
    vol = np.zeros((2, 4, 4), np.float32)
    vol[0, :2] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    out = zscore_in_mask(vol, None)
    nz = out[vol != 0]
    assert abs(nz.mean()) < 1e-5 and abs(nz.std() - 1) < 1e-4


def test_errors_are_explained():
    enc = _micro(("t2w", "adc"))
    with pytest.raises(ValueError, match="lacks"):
        enc.preprocess(np.ones((1, 2, 8, 8), np.float32), ("t2w",), None)
    with pytest.raises(ValueError, match=r"\(B, 2, D, H, W\)"):
        enc(torch.randn(1, 3, 2, 32, 32))
    with pytest.raises(ValueError, match="outside"):
        enc(torch.randn(1, 2, 2, 32, 32), torch.tensor([2]))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        enc(torch.randn(1, 2, 2, 30, 32))
    with pytest.raises(ValueError, match="distinct names"):
        provicnet("micro", input_sequences=("t1w",))
    with pytest.raises(ValueError, match="unknown provicnet options"):
        provicnet("micro", depht=3)
    with pytest.raises(ValueError, match="unknown provicnet size"):
        provicnet("huge")
