"""Every choice gankit offers by name, declared once, with the properties other modules ask about.

The config takes its allowed values and its error messages from these tables; the modules that implement a choice
(losses.py, latent.py, models/, data/, augment.py, the tasks) implement exactly the names listed here, and a test
checks that each one of them does. Plain data only: config.py reads this without importing torch, so that
`gankit --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """What a run trains (config field `task`). The trainer itself is gankit.tasks.TRAINERS[name]."""
    name: str
    help: str
    models: tuple[str, ...]          # the values `model` may take
    conditional: bool = False        # `cond` may be set (labels as a second input)
    eval_metrics: bool = False       # `eval_metrics` applies (else the task scores itself on held-out examples)
    points: bool = False             # 2-D point data sets apply
    packing: bool = False            # PacGAN's `pack` applies
    processes: bool = False          # runs under torchrun with several processes
    needs_holdout: bool = False      # scores itself on held-out examples, so `holdout` must be > 0


TASKS = {t.name: t for t in (
    Task("gan", "G against D", ("dcgan", "mlp"), conditional=True, eval_metrics=True, points=True, packing=True,
         processes=True),
    Task("ssl", "D as a (K+1)-way classifier learning from few labels (Salimans et al. 2016)", ("mlp",),
         needs_holdout=True),
    Task("sr", "G upscales low-resolution images (SRGAN, Ledig et al. 2017)", ("srresnet",)),
)}
