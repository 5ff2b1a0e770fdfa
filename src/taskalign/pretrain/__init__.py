"""Pretraining objectives, one per encoder family, all run by one resumable loop (`loop`);
importing this package registers them (`registry.PRETRAINERS`)."""
from taskalign.pretrain.registry import PRETRAINERS, create_pretrainer, list_pretrainers, register_pretrainer
from taskalign.pretrain import fcmae, mae, provicnet_recipe  # noqa: F401  (registration)

__all__ = ["PRETRAINERS", "create_pretrainer", "list_pretrainers", "register_pretrainer"]
