"""Encoders: the VFM backbones, each with its own preprocessing and feature contract (DESIGN.md §3).

Importing this package registers the built-in families and their pretraining objectives.
"""
from taskalign.encoders.base import (ENCODERS, PRETRAINERS, Encoder, MapInfo, create_encoder, list_encoders,
                                     register_encoder, register_pretrainer)
from taskalign.encoders import convnextv2, mae_vit3d, provicnet  # noqa: F401  (registration)
from taskalign.pretrain import fcmae, dino, mae  # noqa: F401  (registration of pretraining objectives)

__all__ = ["ENCODERS", "PRETRAINERS", "Encoder", "MapInfo", "create_encoder", "list_encoders",
           "register_encoder", "register_pretrainer"]
