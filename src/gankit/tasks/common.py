"""What the tasks' set-up shares beyond gankit.setup."""

from __future__ import annotations

import os

import torch

from gankit import distributed, models, registry
from gankit.checkpoint import TrainState
from gankit.config import Config
from gankit.errors import UserError
from gankit.setup import averaged_copy, resolve_device, seed_everything
from gankit.step import make_optimizers


def single_device(cfg: Config) -> torch.device:
    """The device of a task that runs in one process (registry: Task.processes False)."""
    if not registry.TASKS[cfg.task].processes and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"task {cfg.task} runs in one process; start it with gankit train, not torchrun")
    return resolve_device(cfg.device, distributed.Context())


def train_state(cfg: Config, data_shape: tuple[int, ...], device: torch.device, class_names: list[str]) -> TrainState:
    """A one-process task's models, in the order every such task makes them: the seed, G and D through the model
    registry (models.build) on the device, the averaged G, the optimizers; held in a TrainState."""
    seed_everything(cfg.seed)
    G, D = models.build(cfg, data_shape)
    G, D = G.to(device), D.to(device)
    G_ema = averaged_copy(G, cfg.ema_decay)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    return TrainState(G, D, G_ema, opt_g, opt_d, cfg.to_dict(), class_names)
