"""Downstream tasks (DESIGN.md §2). Importing this package registers the five built-in tasks."""
from taskalign.tasks import (  # noqa: F401  (imported for their @register_task side effect)
    classification,
    distortion_correction,
    segmentation,
    super_resolution,
    synthesis,
)
from taskalign.tasks.base import TASKS, Sample, Task, create_task, list_tasks, register_task

__all__ = ["TASKS", "Sample", "Task", "create_task", "list_tasks", "register_task"]
