"""Optimisation scaffolding shared by fine-tuning and every pretraining objective: one
warmup-cosine schedule, one weight-decay rule, one non-finite-loss guard. A low room: it imports
nothing of the package, so `pretrain/` and `train/` both stand on it."""
from taskalign.optim.guard import NonFiniteLossError, check_finite
from taskalign.optim.groups import decay_groups, is_decayed
from taskalign.optim.schedule import cosine_schedule, lr_at

__all__ = ["NonFiniteLossError", "check_finite", "decay_groups", "is_decayed", "cosine_schedule", "lr_at"]
