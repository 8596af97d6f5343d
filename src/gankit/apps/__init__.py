"""What GANs are for, beyond sampling: the survey's applications, each built from gankit's own parts.

    missing labels  task: ssl   apps/ssl.py      D becomes a (K+1)-way classifier (Salimans et al. 2016)
    missing data    gankit inpaint  apps/inpaint.py  search z so that G(z) matches the known pixels (Yeh et al. 2017)
    super-resolution task: sr   apps/sr.py       G maps low-resolution images to high (SRGAN, Ledig et al. 2017)

`train(cfg)` runs the loop of cfg.task; `gankit.train.train(cfg)` hands every task other than gan to it.
"""

from __future__ import annotations

from pathlib import Path

from gankit.config import Config


def train(cfg: Config, resume: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train what cfg.task says; returns the run folder."""
    if cfg.task == "ssl":
        from gankit.apps import ssl

        return ssl.train(cfg, resume, progress, force)
    if cfg.task == "sr":
        from gankit.apps import sr

        return sr.train(cfg, resume, progress, force)
    from gankit.train import train as train_gan

    return train_gan(cfg, resume, progress, force)
