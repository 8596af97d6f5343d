"""The task table: what each `task` trains. Each entry is a session.Trainer (its set-up, its step, what it draws and
evaluates); the Session runs every one of them the same way. The tasks' properties (which models, conditioning,
metrics, processes apply) are declared in registry.TASKS, which config validation reads.

    gan  tasks/gan.py  G against D, the survey's recipe
    ssl  tasks/ssl.py  D as a (K+1)-way classifier learning from few labels (Salimans et al. 2016)
    sr   tasks/sr.py   G upscales low-resolution images (SRGAN, Ledig et al. 2017)
    predict  tasks/predict.py  G samples the next frames of a sequence from the past ones and z (SAVP, Lee et al.
                               2018)
"""

from __future__ import annotations

from pathlib import Path

from gankit import registry
from gankit.config import Config
from gankit.session import Session
from gankit.tasks.gan import GANTrainer
from gankit.tasks.predict import PredictTrainer
from gankit.tasks.sr import SRTrainer
from gankit.tasks.ssl import SSLTrainer

TRAINERS = {"gan": GANTrainer, "ssl": SSLTrainer, "sr": SRTrainer, "predict": PredictTrainer}
if set(TRAINERS) != set(registry.TASKS):  # a task declared in the registry must have a trainer, and no other
    raise ImportError(f"gankit.tasks: trainers for {sorted(TRAINERS)}, registry.TASKS {sorted(registry.TASKS)}")


def train(cfg: Config, resume: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train what cfg says (a validated Config); returns the run folder. With `resume`, that run folder goes on
    exactly from its latest checkpoint; with `force`, an existing run folder of the same name is replaced."""
    return Session(TRAINERS[cfg.task](cfg), resume, progress, force).run()
