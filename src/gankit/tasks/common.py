"""What the tasks' set-up shares beyond gankit.setup."""

from __future__ import annotations

import os

import torch

from gankit import distributed, registry
from gankit.config import Config
from gankit.errors import UserError
from gankit.setup import resolve_device


def single_device(cfg: Config) -> torch.device:
    """The device of a task that runs in one process (registry: Task.processes False)."""
    if not registry.TASKS[cfg.task].processes and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"task {cfg.task} runs in one process; start it with gankit train, not torchrun")
    return resolve_device(cfg.device, distributed.Context())
