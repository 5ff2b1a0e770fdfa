"""A synthetic ProFound FCMAE pretraining file, written from the documented conversion rules.

`to_sparse_fcmae` is the inverse of taskalign.encoders.weights.profound.sparse_to_dense: dense
names and shapes -> the sparse-convolution (MinkowskiEngine) names and shapes of the published
FCMAE file, plus decoder, mask-token, proj and pred keys."""
from __future__ import annotations

import torch

from taskalign import create_encoder


def _sparse_name(key: str) -> str:
    """Dense name -> sparse (MinkowskiEngine) name: LayerNorms gain `.ln.`, Linears `.linear.`,
    conv weights become `.kernel`."""
    parts = key.split(".")
    stage_ln = parts[0] == "downsample_layers" and ((parts[1] == "0" and parts[2] == "1") or
                                                     (parts[1] != "0" and parts[2] == "0"))
    if stage_ln or (parts[0] == "stages" and parts[3] == "norm"):
        parts.insert(-1, "ln")
    elif parts[0] == "stages" and parts[3] in ("pwconv1", "pwconv2"):
        parts.insert(-1, "linear")
    elif parts[-1] == "weight" and (parts[0] == "downsample_layers" or parts[3] == "dwconv"):
        parts[-1] = "kernel"
    return "encoder." + ".".join(parts)


def _sparse_value(key: str, value: torch.Tensor) -> torch.Tensor:
    """Dense tensor -> how the sparse encoder stores it (inverse of rules 4 and 5)."""
    if key.endswith(".weight") and value.ndim == 5:
        w = value.permute(0, 1, 4, 3, 2)  # reverse the three spatial axes
        if key.split(".")[-2] == "dwconv":  # (dim, 1, k, k, k) -> (k³, dim)
            return w.reshape(w.shape[0], -1).t().contiguous()
        if w.shape[2:] == (1, 1, 1):  # (out, in, 1, 1, 1) -> (in, out)
            return w.reshape(w.shape[0], w.shape[1]).t().contiguous()
        return w.reshape(w.shape[0], w.shape[1], -1).permute(2, 1, 0).contiguous()  # -> (k³, in, out)
    if key.endswith((".grn.gamma", ".grn.beta")):
        return value.reshape(1, -1).clone()
    if key.endswith(".bias") and _sparse_name(key.removesuffix(".bias") + ".weight").endswith(".kernel"):
        return value.reshape(1, -1).clone()  # sparse convolution biases are (1, C)
    return value.clone()


def to_sparse_fcmae(dense: dict[str, torch.Tensor], decoder_dim: int = 32) -> dict[str, torch.Tensor]:
    """A dense encoder state dict -> an FCMAE pretraining state dict with sparse names (the
    encoder without its final norm, plus decoder, mask token, proj and pred keys)."""
    sparse = {_sparse_name(k): _sparse_value(k, v) for k, v in dense.items() if not k.startswith("norm.")}
    last = dense["norm.weight"].shape[0]
    sparse |= {"proj.weight": torch.randn(decoder_dim, last, 1, 1, 1), "proj.bias": torch.zeros(decoder_dim),
               "mask_token": torch.zeros(1, decoder_dim, 1, 1, 1),
               "decoder.0.dwconv.weight": torch.randn(decoder_dim, 1, 7, 7, 7),
               "pred.weight": torch.randn(48, decoder_dim, 1, 1, 1), "pred.bias": torch.zeros(48)}
    return sparse


ISOTROPIC = {"stem_stride": (4, 4, 4)}  # FCMAE kernels are cubes (k³); the micro preset's stem is (2, 4, 4)


def random_profound(size: str, **kw):
    torch.manual_seed(0)
    enc = create_encoder("profound_conv", size=size, **kw).eval()
    with torch.no_grad():  # non-trivial values everywhere (GRN starts at zero, LayerNorms at one)
        for name, p in enc.named_parameters():
            if not name.startswith("norm."):
                p.add_(0.05 * torch.randn_like(p))
    return enc
