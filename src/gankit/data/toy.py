"""The 2-D mixtures of Gaussians used by PacGAN (Lin et al. 2018, section 5.1) to count captured modes.

The points carry no labels: training sees only positions. The mode centres and sigma are kept on the Dataset for
the metrics, which are the only code that may use them.
"""

from __future__ import annotations

import math

import torch

from gankit.data.dataset import Dataset

MIXTURES = ("ring", "grid")
DATA_SEED = 1234  # the data set is fixed; training seeds vary the model, not the data


def mode_centres(name: str) -> tuple[torch.Tensor, float]:
    """Centres (K, 2) and sigma of a mixture."""
    if name == "ring":  # 8 modes evenly spaced on the unit circle
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], 1).float(), 0.01
    if name == "grid":  # 25 modes at (-4 + 2i, -4 + 2j), i, j in 0..4
        axis = torch.arange(5, dtype=torch.float32) * 2 - 4
        gx, gy = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([gx.flatten(), gy.flatten()], 1), 0.05
    raise ValueError(name)


def load(name: str, n_points: int) -> Dataset:
    centres, sigma = mode_centres(name)
    gen = torch.Generator().manual_seed(DATA_SEED)
    which = torch.randint(len(centres), (n_points,), generator=gen)
    x = centres[which] + sigma * torch.randn(n_points, 2, generator=gen)
    return Dataset(name=name, x=x, modes=centres, sigma=sigma)
