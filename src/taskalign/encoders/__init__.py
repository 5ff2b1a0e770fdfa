"""Encoders: the VFM backbones, each with its own preprocessing and feature contract (DESIGN.md §3).

Importing this package registers the built-in families; their pretraining objectives register
in `taskalign.pretrain`.
"""
from taskalign.encoders.base import ENCODERS, Encoder, MapInfo, create_encoder, list_encoders, register_encoder
from taskalign.encoders import convnextv2, mae_vit3d, provicnet  # noqa: F401  (registration)

__all__ = ["ENCODERS", "Encoder", "MapInfo", "create_encoder", "list_encoders", "register_encoder"]
