"""The task table: what each `task` trains. Each entry is a session.Trainer (its set-up, its step, what it draws and
evaluates), from its wing's trainer.py; the Session runs every one of them the same way. The tasks' properties (which
models, conditioning, metrics, processes apply, and what a trained run offers) are declared in registry.TASKS.
"""

from __future__ import annotations

from pathlib import Path

from gankit import registry
from gankit.config import Config
from gankit.session import Session
from gankit.tasks.gan.trainer import GANTrainer
from gankit.tasks.predict.trainer import PredictTrainer
from gankit.tasks.sr.trainer import SRTrainer
from gankit.tasks.ssl.trainer import SSLTrainer

TRAINERS = {"gan": GANTrainer, "ssl": SSLTrainer, "sr": SRTrainer, "predict": PredictTrainer}
if set(TRAINERS) != set(registry.TASKS):  # a task declared in the registry must have a trainer, and no other
    raise ImportError(f"gankit.tasks.table: trainers for {sorted(TRAINERS)}, registry.TASKS {sorted(registry.TASKS)}")


def train(cfg: Config, resume: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train what cfg says (a validated Config); returns the run folder. With `resume`, that run folder goes on
    exactly from its latest checkpoint; with `force`, an existing run folder of the same name is replaced."""
    return Session(TRAINERS[cfg.task](cfg), resume, progress, force).run()
