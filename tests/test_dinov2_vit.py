"""The DINOv2 ViT backbone: token layout, position-embedding resizing, blocks."""
import pytest
import torch

from taskalign.encoders.dinov2_vit import Block, DinoVisionTransformer, ViTConfig, interpolate_pos_embed

SMALL = ViTConfig(patch_size=8, embed_dim=48, depth=2, num_heads=3, num_register_tokens=4, pos_grid=4, layerscale_init=0.5)


@pytest.fixture(scope="module")
def vit() -> DinoVisionTransformer:
    torch.manual_seed(0)
    return DinoVisionTransformer(SMALL).eval()


def test_prepare_tokens_order_and_count(vit):
    x = torch.randn(2, 3, 32, 24)  # 4 x 3 patch grid
    extra = torch.randn(2, 3, 48)
    tokens = vit.prepare_tokens(x, extra)
    assert tokens.shape == (2, 1 + 4 + 3 + 12, 48)
    pos = interpolate_pos_embed(vit.pos_embed, (4, 3))
    torch.testing.assert_close(tokens[:, 0], (vit.cls_token + pos[:, :1])[:, 0].expand(2, -1))
    torch.testing.assert_close(tokens[:, 1:5], vit.register_tokens.expand(2, -1, -1))  # no position added
    torch.testing.assert_close(tokens[:, 5:8], extra)
    torch.testing.assert_close(tokens[:, 8:], vit.patch_embed(x) + pos[:, 1:])


def test_forward_features_names_and_shapes(vit):
    out = vit.forward_features(torch.randn(2, 3, 32, 32))
    assert out["x_norm_clstoken"].shape == (2, 48)
    assert out["x_norm_regtokens"].shape == (2, 4, 48)
    assert out["x_norm_patchtokens"].shape == (2, 16, 48)


def test_pos_embed_interpolation_is_identity_when_the_grid_matches():
    pos = torch.randn(1, 1 + 37 * 37, 384)
    assert interpolate_pos_embed(pos, (37, 37)) is pos


def test_pos_embed_resizing_paper_grid():
    pos = torch.randn(1, 1370, 384)
    out = interpolate_pos_embed(pos, (32, 32))
    assert out.shape == (1, 1 + 32 * 32, 384)
    torch.testing.assert_close(out[:, 0], pos[:, 0])  # the cls position is kept
    const = torch.full((1, 1370, 4), 2.5)
    torch.testing.assert_close(interpolate_pos_embed(const, (32, 32)), torch.full((1, 1025, 4), 2.5))


def test_pos_embed_must_be_a_square_grid():
    with pytest.raises(ValueError, match="square"):
        interpolate_pos_embed(torch.randn(1, 1 + 12, 8), (3, 4))


def test_slices_must_be_a_multiple_of_the_patch(vit):
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        vit.prepare_tokens(torch.randn(1, 3, 30, 32))


def test_block_is_permutation_equivariant():
    torch.manual_seed(0)
    block = Block(24, 3, 4.0, 0.5).eval()
    x = torch.randn(2, 7, 24)
    perm = torch.randperm(7)
    torch.testing.assert_close(block(x)[:, perm], block(x[:, perm]), rtol=1e-5, atol=1e-5)


def test_layerscale_and_mask_token(vit):
    assert torch.all(vit.blocks[0].ls1.gamma == 0.5)
    names = dict(vit.named_parameters())
    assert "mask_token" in vit.state_dict() and "mask_token" not in names  # kept for checkpoints only
