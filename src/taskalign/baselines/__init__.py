"""Specialised baselines (DESIGN.md §2): the task's own from-scratch network, the reference of RPG."""
from taskalign.baselines.specialised import (
    DENSENET121_MIN_VOXELS,
    DYNUNET_FILTERS,
    build_specialised,
    plan_dynunet,
    shallow_densenet_blocks,
)

__all__ = ["DENSENET121_MIN_VOXELS", "DYNUNET_FILTERS", "build_specialised", "plan_dynunet",
           "shallow_densenet_blocks"]
