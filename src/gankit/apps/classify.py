"""The classifier of a semi-supervised run (task ssl, gankit/tasks/ssl.py) in use: labels for new images.

    clf = gankit.apps.classify.load_classifier("runs/ssl-mnist"); labels = clf(x).argmax(1)   # x (N, 1, 28, 28)
    gankit classify runs/ssl-mnist --images FILE.npz|DIR|heldout [--out labels.csv]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gankit import checkpoint, config as config_mod
from gankit.apps.common import read_images
from gankit.errors import UserError
from gankit.models.base import eval_mode
from gankit.setup import load_data


@torch.no_grad()
def predict(D: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class logits (N, K) on the CPU of images x (N, C, H, W) in [-1, 1], with D in eval mode (no noise)."""
    device = next(D.parameters()).device
    with eval_mode(D):
        return torch.cat([D(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


def error(D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict(D, x).argmax(1) != y.cpu()).double().mean().item()


def _read(source: str | Path, step: int | None) -> checkpoint.Saved:
    return checkpoint.read(source, step).require("ssl", "classify", " (trained with --config mnist-ssl or --task ssl)")


def load_classifier(source: str | Path, device: str = "cpu", step: int | None = None, ema: bool = True) -> nn.Module:
    """The classifier of an ssl run (its averaged D when it kept one): model(x) -> logits (N, K), x in [-1, 1]."""
    return _read(source, step).discriminator(ema).to(device)


def classify(source: str | Path, images: str, out: str | Path | None = None, step: int | None = None) -> str:
    """`gankit classify`: the ssl classifier's labels for FILE.npz, DIR or heldout; with labels, its error too.
    Writes index,class,probability rows to out (a new CSV file) when given; returns a one-paragraph summary."""
    saved = _read(source, step)
    model = saved.discriminator(ema=True)
    cfg = config_mod.load(None, saved.config)
    if out is not None and Path(out).exists():
        raise UserError(f"classify: {out} exists; choose another file name (nothing is overwritten)")
    if images == "heldout":
        held = load_data(cfg, "held_out")
        x, y = held.floats(), held.y.cpu()
    else:
        x, y = read_images(images, cfg.channels, cfg.img_size)
    p = torch.softmax(predict(model, x), 1)
    prob, cls = p.max(1)
    if out is not None:
        rows = "\n".join(f"{i},{int(c)},{float(q):.4f}" for i, (c, q) in enumerate(zip(cls, prob)))
        Path(out).write_text("index,class,probability\n" + rows + "\n")
    counts = torch.bincount(cls, minlength=model.num_classes).tolist()
    text = f"{len(x)} images; predicted classes: " + ", ".join(f"{k}: {c}" for k, c in enumerate(counts))
    if y is not None:
        text += f"\nerror against their labels: {(cls != y).double().mean().item():.2%}"
    return text + (f"\n{out}" if out is not None else "")
