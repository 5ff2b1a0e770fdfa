"""ProFound's published files (`profound_conv`, 3D ConvNeXt-V2): a dict with key `model`.

Two layouts:

- **fine-tuned** files carry the dense encoder under `encoder.` (`encoder.downsample_layers.0.0.weight`
  (96, 3, 4, 4, 4), `encoder.stages.s.b.{dwconv,norm,pwconv1,grn,pwconv2}.*`, ...) next to their task
  heads, which are not part of the encoder and are left out;
- the **pretrained FCMAE** file carries the sparse-convolution encoder of masked pretraining
  (MinkowskiEngine names) next to its decoder. `sparse_to_dense` converts it:

  1. drop the pretraining head: keys starting with `decoder`, `mask_token`, `proj`, `pred`;
  2. strip `encoder.`;
  3. remove the wrapper path elements `.ln.` (sparse LayerNorm) and `.linear.` (sparse Linear);
  4. `.kernel` -> `.weight`: a convolution kernel (k³, in, out) becomes (out, in, k, k, k) with the
     three spatial axes reversed (the sparse kernel enumerates offsets with the first axis fastest);
     a depthwise kernel (k³, dim) becomes (dim, 1, k, k, k), reversed alike; the k = 1 kernel of the
     last downsampling layer, stored as (in, out), becomes (out, in, 1, 1, 1);
  5. biases stored as (1, C) are flattened to (C,); GRN `gamma` / `beta` (1, 4d) become (1, 1, 1, 1, 4d).

  The sparse encoder has no final `norm` (it only feeds the decoder): the dense model's `norm.*`
  keeps its initial values (ones and zeros), and the loader says so in a note.
"""
from __future__ import annotations

import torch

FCMAE_HEAD_PREFIXES = ("decoder", "mask_token", "proj", "pred")
FINAL_NORM_KEYS = frozenset({"norm.weight", "norm.bias"})
NORM_NOTE = ("{encoder}: the file has no final `norm` (FCMAE's sparse encoder and global-pool fine-tuning do "
             "not use it); norm.weight / norm.bias keep their initial values (ones and zeros)")


def is_sparse_fcmae(keys) -> bool:
    """Whether a state dict's keys are the sparse-convolution (FCMAE pretraining) layout."""
    return any(k.endswith(".kernel") for k in keys)


def _cube_side(volume: int, key: str) -> int:
    side = round(volume ** (1 / 3))
    if side ** 3 != volume:
        raise ValueError(f"{key}: kernel volume {volume} is not a cube k³; not a 3D sparse kernel")
    return side


def dense_kernel(name: str, kernel: torch.Tensor) -> torch.Tensor:
    """A sparse-convolution kernel under its dense `name` -> the dense Conv3d weight (rule 4)."""
    if kernel.ndim == 3:  # (k³, in, out) -> (out, in, k, k, k), spatial axes reversed
        volume, c_in, c_out = kernel.shape
        k = _cube_side(volume, name)
        return kernel.permute(2, 1, 0).reshape(c_out, c_in, k, k, k).permute(0, 1, 4, 3, 2).contiguous()
    if kernel.ndim == 2 and ".dwconv." in f".{name}":  # depthwise (k³, dim) -> (dim, 1, k, k, k)
        volume, dim = kernel.shape
        k = _cube_side(volume, name)
        return kernel.t().reshape(dim, 1, k, k, k).permute(0, 1, 4, 3, 2).contiguous()
    if kernel.ndim == 2:  # k = 1 convolution (in, out) -> (out, in, 1, 1, 1)
        return kernel.t().reshape(kernel.shape[1], kernel.shape[0], 1, 1, 1).contiguous()
    raise ValueError(f"{name}: a sparse kernel must be 2-D or 3-D, got shape {tuple(kernel.shape)}")


def sparse_to_dense(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """FCMAE sparse names -> dense `profound_conv` names (module docstring, rules 1-5);
    returns (dense state dict, the dropped pretraining-head keys)."""
    dense, dropped = {}, []
    for key, value in state.items():
        if key.split(".")[0] in FCMAE_HEAD_PREFIXES:
            dropped.append(key)
            continue
        name = key.removeprefix("encoder.")
        name = f".{name}".replace(".ln.", ".").replace(".linear.", ".")[1:]
        if name.endswith(".kernel"):
            name = name.removesuffix(".kernel") + ".weight"
            value = dense_kernel(name, value)
        elif name.endswith((".grn.gamma", ".grn.beta")):
            value = value.reshape(1, 1, 1, 1, -1)
        elif name.endswith(".bias") and value.ndim != 1:
            value = value.reshape(-1)
        dense[name] = value
    return dense, dropped


def dense_encoder_part(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A dense file -> (encoder state dict, keys left out). With an `encoder.` prefix (fine-tuned
    files) the prefix is stripped and every other key (task heads) is left out; without one the
    whole file is taken as the encoder (an in-house file, or a stripped one). `encoder.head.*` is a
    head too."""
    if not any(k.startswith("encoder.") for k in state):
        return dict(state), []
    def is_encoder(key: str) -> bool:  # a classification head may sit at `encoder.head.*`
        return key.startswith("encoder.") and not key.startswith("encoder.head.")

    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if is_encoder(k)}
    return encoder, [k for k in state if not is_encoder(k)]
