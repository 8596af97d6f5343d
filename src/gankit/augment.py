"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image D sees, real and fake.

Written here because no maintained package ships it (the authors' repository is a script, not a library); this
follows their PyTorch reference (DiffAugment_pytorch.py). The randomness comes from the global torch RNG, which
checkpoints save, so a resumed run draws the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device) - 0.5)                             # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) * 2) + mean                # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) + 0.5) + mean           # contrast


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gi = (gi.unsqueeze(0) + tx + 1).clamp(0, h + 1)                                      # (B, H, W) rows in padded
    gj = (gj.unsqueeze(0) + ty + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])                                                      # zero border to read from
    bi = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[bi, gi, gj].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ratio * size at a random place in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oi = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)               # square centres; the
    oj = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)               # square may leave the image
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    rows = (gi.unsqueeze(0) >= oi - ch // 2) & (gi.unsqueeze(0) < oi - ch // 2 + ch)
    cols = (gj.unsqueeze(0) >= oj - cw // 2) & (gj.unsqueeze(0) < oj - cw // 2 + cw)
    keep = ~(rows & cols)                                                                # (B, H, W)
    return x * keep.unsqueeze(1).to(x.dtype)


# The implementation of each name in registry.DIFFAUG_OPS (what the config's `diffaug` accepts); the names are
# declared there, and tests/test_registry.py checks that this table implements exactly them.
OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated ops of `policy` in order; an empty policy returns x unchanged."""
    for name in filter(None, policy.split(",")):
        x = OPS[name](x)
    return x
