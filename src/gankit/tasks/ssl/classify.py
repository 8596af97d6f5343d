"""The classifier of a semi-supervised run (task ssl, gankit/tasks/ssl/trainer.py) in use: labels for new images.

    clf = gankit.tasks.ssl.classify.load_classifier("runs/ssl-mnist"); labels = clf(x).argmax(1)   # x (N, 1, 28, 28)
    gankit classify runs/ssl-mnist --images FILE.npz|DIR|heldout [--out labels.csv]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gankit import checkpoint, config as config_mod, outputs
from gankit.tasks.use import model_channels, read_images, run_arguments, write_new_file
from gankit.config import path_argument
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
    return checkpoint.read(source, step).require("classify", " (trained with --config mnist-ssl or --task ssl)")


def load_classifier(source: str | Path, device: str = "cpu", step: int | None = None, ema: bool = True) -> nn.Module:
    """The classifier of an ssl run (its averaged D when it kept one): model(x) -> logits (N, K), x in [-1, 1]."""
    return _read(source, step).discriminator(ema).to(device)


def classify(source: str | Path, images: str, out: str | Path | None = None, step: int | None = None) -> str:
    """`gankit classify`: the ssl classifier's labels for FILE.npz, DIR or heldout; with labels, its error too.
    Writes index,class,probability rows to out (a new CSV file) when given; returns a one-paragraph summary.
    Every input is read and checked before out is written (atomically: a failure leaves none)."""
    _, step, _ = run_arguments(0, step, "cpu")
    images = path_argument("images", images)
    shown = None if out is None else path_argument("out", out)   # as given, for the summary
    out = None if shown is None else Path(shown)
    if out is not None:
        if out.exists() or out.is_symlink():
            raise UserError(f"classify: {out} exists; choose another file name (nothing is overwritten)")
        outputs.check_new("classify", out)
    saved = _read(source, step)
    model = saved.discriminator(ema=True)
    cfg = config_mod.load(None, saved.config)
    if images == "heldout":
        held = load_data(cfg, "held_out")
        x, y = held.floats(), held.y.cpu()
    else:
        x, y = read_images(images, model_channels(model), cfg.img_size, saved.class_names or model.num_classes)
    p = torch.softmax(predict(model, x), 1)
    if not torch.isfinite(p).all():
        raise UserError("classify: the run's classifier gave non-finite scores; nothing is written")
    prob, cls = p.max(1)
    if out is not None:
        rows = "\n".join(f"{i},{int(c)},{float(q):.4f}" for i, (c, q) in enumerate(zip(cls, prob)))
        write_new_file(out, "index,class,probability\n" + rows + "\n")
    counts = torch.bincount(cls, minlength=model.num_classes).tolist()
    text = f"{len(x)} images; predicted classes: " + ", ".join(f"{k}: {c}" for k, c in enumerate(counts))
    if y is not None:
        text += f"\nerror against their labels: {(cls != y).double().mean().item():.2%}"
    return text + (f"\n{shown}" if shown is not None else "")
