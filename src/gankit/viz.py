"""Pictures: image grids (torchvision), numbered sample sheets, animated GIFs (Pillow), 2-D scatter plots
(matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid, save_image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1] -> uint8 array (N, H, W, C)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


DISPLAY_SIZE = 32  # grids of smaller images are enlarged by whole pixels (nearest) to at least this, for display only


def display_scale(size: int) -> int:
    """How many times a grid of size x size images is enlarged for display: 8 px digits 4x, 32 px and up 1x."""
    return max(1, DISPLAY_SIZE // size)


def save_grid(x: torch.Tensor, path: Path, nrow: int | None = None) -> Path:
    """A PNG grid of images in [-1, 1]; nrow defaults to a square-ish layout. Small images are enlarged by
    display_scale (nearest neighbour: each pixel a square, nothing invented); the samples themselves keep their size."""
    nrow = nrow or max(1, int(math.ceil(math.sqrt(x.shape[0]))))
    scale = display_scale(x.shape[-1])
    if scale == 1:
        save_image(x.detach().float().cpu(), path, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2,
                   pad_value=1.0)
    else:
        grid_image(x, nrow, scale).save(path, format="PNG")
    return Path(path)


def grid_image(x: torch.Tensor, nrow: int, scale: int = 1) -> Image.Image:
    grid = make_grid(x.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2,
                     pad_value=1.0)
    im = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return im.resize((im.width * scale, im.height * scale), Image.NEAREST) if scale > 1 else im


def save_sheet(x: torch.Tensor, path: Path, nrow: int | None = None) -> Path:
    """A grid with each image's index written on it, to pick samples by number (for `gankit arithmetic`)."""
    nrow = nrow or max(1, int(math.ceil(math.sqrt(x.shape[0]))))
    size = x.shape[-1]
    scale = max(1, 64 // size)  # small images are enlarged so the numbers stay legible
    im = grid_image(x, nrow, scale).convert("RGB")
    draw = ImageDraw.Draw(im)
    cell = (size + 2) * scale
    for i in range(x.shape[0]):
        r, c = divmod(i, nrow)
        xy = (c * cell + 2 * scale, r * cell + 2 * scale)
        draw.rectangle([xy, (xy[0] + 6 * len(str(i)) + 2, xy[1] + 10)], fill=(255, 255, 255))
        draw.text((xy[0] + 1, xy[1]), str(i), fill=(200, 0, 0))
    im.save(path)
    return Path(path)


def save_gif(frames: torch.Tensor, path: Path, nrow: int, duration_ms: int = 80) -> Path:
    """frames (T, B, C, H, W): each frame is a grid of B images; the GIF plays forward then back."""
    scale = max(1, 64 // frames.shape[-1])
    ims = [grid_image(f, nrow, scale).convert("P", palette=Image.ADAPTIVE) for f in frames]
    ims = ims + ims[-2:0:-1]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=duration_ms, loop=0)
    return Path(path)


def save_scatter(points: torch.Tensor, path: Path, modes: torch.Tensor | None = None, real: torch.Tensor | None = None,
                 title: str = "") -> Path:
    """Generated 2-D points over the real data and the true mode centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        r = real.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="#bbbbbb", label="real", linewidths=0)
    p = points.detach().float().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="#1f77b4", alpha=0.6, label="generated", linewidths=0)
    if modes is not None:
        m = modes.cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], s=40, marker="x", c="#d62728", label="modes")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def save_rows(rows: list[torch.Tensor], path: Path, labels: list[str] | None = None) -> Path:
    """Rows of images of different lengths, each (k, C, H, W) in [-1, 1], padded on the right with white cells,
    with an optional label written left of each row (the arithmetic figure: groups, their means, the result)."""
    width = max(r.shape[0] for r in rows)
    blank = torch.ones_like(rows[0][:1])                               # a white cell, (1, C, H, W)
    cells = torch.cat([torch.cat([r, blank.expand(width - r.shape[0], *r.shape[1:])]) for r in rows])
    scale = max(1, 64 // rows[0].shape[-1])
    grid = grid_image(cells, width, scale).convert("RGB")
    margin = 8 + 6 * max((len(s) for s in labels), default=0) if labels else 0
    im = Image.new("RGB", (grid.width + margin, grid.height), (255, 255, 255))
    im.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(im)
    cell = (rows[0].shape[-1] + 2) * scale
    for i, text in enumerate(labels or []):
        draw.text((4, i * cell + cell // 2 - 5), text, fill=(0, 0, 0))
    im.save(path)
    return Path(path)
