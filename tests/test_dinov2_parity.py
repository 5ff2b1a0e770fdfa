"""Our DINOv2 backbone against an independent implementation: `transformers`'
`Dinov2WithRegistersModel`, given the same weights mapped key by key (qkv split into q, k, v).

At the stored grid (518×518 for ViT-S/14: 37×37 patches) no position interpolation happens; at
448×448 both resize the 37×37 positions to 32×32 with the same call (bicubic, antialias, in
float32), so the tokens agree there too (docs/architecture.md gives the measured differences)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from taskalign.encoders.dinov2_vit import DinoVisionTransformer, ViTConfig

transformers = pytest.importorskip("transformers")


def to_transformers(ours: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Our DINOv2 state dict -> `Dinov2WithRegistersModel` names (transformers >= 5)."""
    out = {"embeddings.cls_token": ours["cls_token"], "embeddings.mask_token": ours["mask_token"],
           "embeddings.position_embeddings": ours["pos_embed"], "embeddings.register_tokens": ours["register_tokens"],
           "embeddings.patch_embeddings.projection.weight": ours["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": ours["patch_embed.proj.bias"],
           "layernorm.weight": ours["norm.weight"], "layernorm.bias": ours["norm.bias"]}
    for i in range(depth):
        a, b = f"blocks.{i}.", f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            q, k, v = ours[a + f"attn.qkv.{part}"].chunk(3, dim=0)  # rows ordered (q, k, v) × heads × head_dim
            out |= {b + f"attention.q_proj.{part}": q, b + f"attention.k_proj.{part}": k,
                    b + f"attention.v_proj.{part}": v, b + f"attention.o_proj.{part}": ours[a + f"attn.proj.{part}"]}
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[b + f"{name}.{part}"] = ours[a + f"{name}.{part}"]
        out[b + "layer_scale1.lambda1"] = ours[a + "ls1.gamma"]
        out[b + "layer_scale2.lambda1"] = ours[a + "ls2.gamma"]
    return out


def _pair(cfg: ViTConfig):
    torch.manual_seed(0)
    ours = DinoVisionTransformer(cfg).eval()
    with torch.no_grad():  # every weight random and of its usual scale, LayerScale included
        for name, p in ours.named_parameters():
            p.copy_(torch.randn_like(p) * (0.1 if name.endswith("gamma") else 0.02 if p.ndim > 1 else 0.05))
    hf_cfg = transformers.Dinov2WithRegistersConfig(
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
        mlp_ratio=int(cfg.mlp_ratio), patch_size=cfg.patch_size,
        image_size=cfg.patch_size * cfg.pos_grid, num_register_tokens=cfg.num_register_tokens, layer_norm_eps=1e-6)
    theirs = transformers.Dinov2WithRegistersModel(hf_cfg).eval()
    mapped = to_transformers(ours.state_dict(), cfg.depth)
    if "encoder.layer.0.attention.attention.query.weight" in theirs.state_dict():  # transformers 4.x names
        mapped = {k.replace("attention.q_proj", "attention.attention.query").replace("attention.k_proj", "attention.attention.key")
                  .replace("attention.v_proj", "attention.attention.value").replace("attention.o_proj", "attention.output.dense"): v
                  for k, v in mapped.items()}
    assert set(mapped) == set(theirs.state_dict())  # key for key
    theirs.load_state_dict(mapped, strict=True)
    return ours, theirs


def max_token_difference(ours, theirs, side: int, seed: int = 1) -> float:
    """Max |ours - theirs| over every output token (cls, registers, patches) after the final norm."""
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        tokens, _ = ours.run_blocks(ours.prepare_tokens(x))
        mine = ours.norm(tokens)
        other = theirs(pixel_values=x).last_hidden_state
    assert mine.shape == other.shape
    return float((mine - other).abs().max())


def test_small_vit_matches_transformers_with_and_without_interpolation():
    ours, theirs = _pair(ViTConfig(embed_dim=64, depth=2, num_heads=2, pos_grid=7))
    assert max_token_difference(ours, theirs, 98) < 1e-4   # the stored 7×7 grid
    assert max_token_difference(ours, theirs, 70) < 1e-4   # 5×5: positions resized by both
    # The comparison is sensitive: resizing without antialias (the original DINOv2 without
    # registers) or perturbing one weight shows up far above the tolerance.
    plain = DinoVisionTransformer(replace(ours.cfg, pos_antialias=False)).eval()
    plain.load_state_dict(ours.state_dict())
    assert max_token_difference(plain, theirs, 70) > 1e-3
    with torch.no_grad():
        theirs.encoder.layer[1].mlp.fc2.bias.add_(1e-3)
    assert max_token_difference(ours, theirs, 98) > 1e-4


@pytest.mark.slow
def test_vit_s14_matches_transformers_at_518_and_448():
    ours, theirs = _pair(ViTConfig())  # the paper's ViT-S/14 with 4 registers, 37×37 positions
    at_518 = max_token_difference(ours, theirs, 518)
    at_448 = max_token_difference(ours, theirs, 448)
    print(f"ViT-S/14 vs transformers: max abs token difference {at_518:.2e} at 518, {at_448:.2e} at 448")
    assert at_518 < 1e-4
    assert at_448 < 1e-4  # same interpolation call on both sides
