"""Task heads and TaskModel on two small fake encoders that follow the encoder contract:
a volumetric pyramid (ConvNeXt-like strides) and a slice-wise ViT (equal-stride token maps)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from taskalign.encoders.base import Encoder, MapInfo
from taskalign.heads import AttentionMILHead, UNETRHead, build_head, plan_levels
from taskalign.models import TaskModel

C_IN = 3


class FakeVolumetric(Encoder):
    """Four conv stages at strides (2,4,4), (4,8,8), (8,16,16), (8,16,16) like profound_conv."""

    family, spatial_dims = "fake_conv", 3

    def __init__(self, in_chans: int = C_IN, dims: tuple[int, ...] = (8, 16, 24, 24)) -> None:
        super().__init__()
        strides = [(2, 4, 4), (4, 8, 8), (8, 16, 16), (8, 16, 16)]
        self.feature_info = [MapInfo(c, s) for c, s in zip(dims, strides)]
        self.pooled_dim = dims[-1]
        self.stages = nn.ModuleList([
            nn.Conv3d(in_chans, dims[0], kernel_size=(2, 4, 4), stride=(2, 4, 4)),
            nn.Conv3d(dims[0], dims[1], 2, 2), nn.Conv3d(dims[1], dims[2], 2, 2),
            nn.Conv3d(dims[2], dims[3], 3, padding=1)])

    def forward_features(self, x, slices=None):
        maps = []
        for stage in self.stages:
            x = F.gelu(stage(x))
            maps.append(x)
        return {"pooled": x.mean(dim=(2, 3, 4)), "maps": maps}


class FakeSliceWise(Encoder):
    """A per-slice token mixer: one patch embedding shared by the sequences, four blocks whose
    outputs are the maps (channels E·n_seq, stride (1, 8, 8)), like provicnet."""

    family, spatial_dims = "fake_vit", 2

    def __init__(self, in_chans: int = C_IN, embed_dim: int = 8, patch: int = 8, depth: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(1, embed_dim, patch, patch)
        self.seq_embed = nn.Parameter(0.02 * torch.randn(in_chans, embed_dim))
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim), nn.GELU())
                                    for _ in range(depth))
        self.feature_info = [MapInfo(embed_dim * in_chans, (1, patch, patch)) for _ in range(depth)]
        self.pooled_dim = embed_dim * in_chans

    def forward_features(self, x, slices=None):
        if slices is not None:
            x = x[:, :, slices]
        b, c = x.shape[:2]
        t = self.patch_embed(rearrange(x, "b c d h w -> (b c d) 1 h w"))   # (B·C·D, E, h, w)
        h = t.shape[-2]
        t = rearrange(t, "(b c d) e h w -> b c d (h w) e", b=b, c=c) + self.seq_embed[None, :, None, None]
        maps = []
        for block in self.blocks:
            t = t + block(t)
            maps.append(rearrange(t, "b c d (h w) e -> b (c e) d h w", h=h))
        return {"pooled": rearrange(t.mean(dim=(2, 3)), "b c e -> b (c e)"), "maps": maps}


ENCODERS = {"volumetric": FakeVolumetric, "slice_wise": FakeSliceWise}
KINDS = {"classification": 1, "segmentation": 2, "image": 2}


def _model(encoder_name: str, kind: str, **kw) -> TaskModel:
    torch.manual_seed(0)
    encoder = ENCODERS[encoder_name]()
    return TaskModel(encoder, build_head(kind, encoder, C_IN, KINDS[kind], **kw))


# ---- planning -------------------------------------------------------------------------------

def test_plan_turns_equal_vit_maps_into_a_pyramid():
    levels, map_level = plan_levels([(8, 8)] * 4)
    assert levels == [(1, 1), (2, 2), (4, 4), (8, 8)]
    assert map_level == [0, 1, 2, 3]           # map i up-sampled by 2**(3 - i)


def test_plan_keeps_pyramid_strides_and_lifts_a_repeated_deepest_stride():
    levels, map_level = plan_levels([(2, 4, 4), (4, 8, 8), (8, 16, 16), (8, 16, 16)])
    assert levels == [(1, 1, 1), (2, 4, 4), (4, 8, 8), (8, 16, 16)]
    assert map_level == [1, 2, 2, 3]


def test_plan_handles_non_power_of_two_patches_and_anisotropy():
    assert plan_levels([(14, 14)] * 4)[0] == [(1, 1), (7, 7), (14, 14)]
    assert plan_levels([(1, 8, 8)] * 3)[0] == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)]


@pytest.mark.parametrize("strides", [[], [(4, 8, 8), (2, 4, 4)], [(2, 4, 4), (3, 8, 8)], [(0, 4, 4)]])
def test_plan_rejects_bad_strides(strides):
    with pytest.raises(ValueError):
        plan_levels(strides)


# ---- shapes and contract ----------------------------------------------------------------------

@pytest.mark.parametrize("encoder_name", sorted(ENCODERS))
@pytest.mark.parametrize("shape", [(8, 32, 32), (16, 48, 48)])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_output_shapes(encoder_name, shape, kind):
    model = _model(encoder_name, kind).eval()
    x = torch.randn(2, C_IN, *shape)
    slices = torch.tensor([0, 3, 5])
    with torch.no_grad():
        full, some = model(x), model(x, slices)
    if kind == "classification":
        assert full.shape == some.shape == (2, 1)
    else:
        depth = 3 if encoder_name == "slice_wise" else shape[0]  # volumetric encoders ignore slices
        assert full.shape == (2, KINDS[kind], *shape)
        assert some.shape == (2, KINDS[kind], depth, *shape[1:])


def test_dense_head_handles_sizes_the_strides_do_not_divide():
    model = _model("volumetric", "segmentation").eval()
    x = torch.randn(1, C_IN, 12, 40, 40)          # deepest maps floor to (1, 2, 2), levels ceil to (2, 3, 3)
    with torch.no_grad():
        assert model(x).shape == (1, 2, 12, 40, 40)


def test_slice_wise_head_decodes_each_slice_on_its_own():
    model = _model("slice_wise", "segmentation").eval()
    x = torch.randn(2, C_IN, 8, 32, 32)
    slices = torch.tensor([1, 4, 6])
    with torch.no_grad():
        assert torch.allclose(model(x, slices), model(x)[:, :, slices], atol=1e-5)


def test_slice_wise_flag():
    assert _model("slice_wise", "image").slice_wise and not _model("volumetric", "image").slice_wise


def test_heads_are_built_from_the_contract_only():
    """Only feature_info / spatial_dims are read: a bare namespace is enough."""
    spec = SimpleNamespace(spatial_dims=2, feature_info=[MapInfo(12, (1, 8, 8))] * 4)
    assert isinstance(build_head("classification", spec, C_IN, 1), AttentionMILHead)
    assert isinstance(build_head("segmentation", spec, C_IN, 2), UNETRHead)


def test_head_widths_follow_feature_size():
    narrow = _model("volumetric", "segmentation", feature_size=8)
    wide = _model("volumetric", "segmentation", feature_size=16)
    assert narrow.head.out_block.conv.conv.in_channels == 8 and wide.head.out_block.conv.conv.in_channels == 16
    assert sum(p.numel() for p in narrow.head.parameters()) < sum(p.numel() for p in wide.head.parameters())


def test_bad_head_requests_raise():
    encoder = FakeVolumetric()
    with pytest.raises(ValueError, match="unknown task kind"):
        build_head("detection", encoder, C_IN, 1)
    bad_2d = SimpleNamespace(pooled_dim=8, spatial_dims=2, feature_info=[MapInfo(8, (2, 8, 8))])
    with pytest.raises(ValueError, match="D stride 1"):
        build_head("segmentation", bad_2d, C_IN, 2)
    head = build_head("segmentation", encoder, C_IN, 2)
    features = encoder.forward_features(torch.randn(1, C_IN, 8, 32, 32))
    features["maps"][0] = features["maps"][0][:, :4]
    with pytest.raises(ValueError, match="channels"):
        head(features, torch.randn(1, C_IN, 8, 32, 32))


# ---- training -----------------------------------------------------------------------------------

def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "classification":
        return F.binary_cross_entropy_with_logits(pred, target)
    if kind == "segmentation":
        return F.cross_entropy(pred, target[:, 0].long())
    return F.mse_loss(pred, target)


def _batch(kind: str, shape=(8, 32, 32), n: int = 2):
    """A fixed batch whose target depends on the input (learnable, not noise to memorise)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, C_IN, *shape, generator=g)
    smooth = F.avg_pool3d(x[:, :1], 3, stride=1, padding=1)
    if kind == "classification":
        return x, torch.tensor([[0.0], [1.0]] * (n // 2))
    if kind == "segmentation":
        return x, (smooth > 0.1).float()
    return x, torch.cat([smooth, x[:, 1:2] - x[:, 2:3]], dim=1)


@pytest.mark.parametrize("encoder_name", sorted(ENCODERS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_parameter_gets_a_gradient(encoder_name, kind):
    model = _model(encoder_name, kind)
    x, target = _batch(kind)
    slices = torch.tensor([2, 5]) if encoder_name == "slice_wise" else None
    if slices is not None and kind != "classification":
        target = target[:, :, slices]
    _loss(kind, model(x, slices), target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("encoder_name, kind", [("volumetric", "classification"), ("volumetric", "segmentation"),
                                                ("slice_wise", "image")])  # each kind once, 3D and 2D dense
def test_head_overfits_one_batch(encoder_name, kind):
    model = _model(encoder_name, kind, **({"dropout": 0.0} if kind == "classification" else {}))
    x, target = _batch(kind, n=2 if kind == "classification" else 1)
    optimiser = torch.optim.AdamW(model.parameter_groups(1e-3, 3e-3), weight_decay=0.0)
    losses = []
    for _ in range(40):
        loss = _loss(kind, model(x), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.1 * losses[0], f"{kind} loss {losses[0]:.3f} -> {losses[-1]:.3f}"


# ---- optimiser groups --------------------------------------------------------------------------

def test_parameter_groups_cover_every_parameter_once_at_its_rate():
    model = _model("volumetric", "segmentation")
    groups = model.parameter_groups(1e-4, 1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("encoder", 1e-4), ("head", 1e-3)]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.encoder.parameters()}


def test_parameter_groups_leave_out_frozen_encoder_and_split_weight_decay():
    model = _model("slice_wise", "classification")
    model.encoder.requires_grad_(False)
    assert [g["name"] for g in model.parameter_groups(1e-4, 1e-3)] == ["head"]
    model.encoder.requires_grad_(True)
    groups = {g["name"]: g for g in model.parameter_groups(1e-4, 1e-3, weight_decay=0.05)}
    assert set(groups) == {"encoder", "encoder_no_decay", "head", "head_no_decay"}
    assert groups["head"]["weight_decay"] == 0.05 and groups["head_no_decay"]["weight_decay"] == 0.0
    # the one rule of taskalign.optim: biases, norms, gains and (1, ...) tokens are not decayed
    assert all(p.ndim < 2 or p.shape[0] == 1 for p in groups["head_no_decay"]["params"])
    assert all(p.ndim >= 2 and p.shape[0] != 1 for p in groups["head"]["params"])
