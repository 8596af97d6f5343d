"""Super-resolution in use: upscale images with the G of an sr run (task sr, gankit/tasks/sr/trainer.py), and score
upscaled images against their originals beside bicubic (PSNR, SSIM, class accuracy, FID in the data set
classifier's features).

    gankit upscale runs/sr-mnist --images heldout --out up/        # scored against the originals
    gankit upscale runs/sr-mnist --images small.npz --out up/      # 7x7 images -> 28x28
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit import checkpoint, config as config_mod, data as datasets, outputs, viz
from gankit.tasks.use import check_new_folder, model_channels, read_images, run_arguments, save_npz, staged_folder
from gankit.config import path_argument, quote
from gankit.errors import ConfigError, UserError
from gankit.models.base import eval_mode
from gankit.metrics import classifier as clf
from gankit.metrics.fid import fid_from_features
from gankit.models.sr import downscale, upscale_bicubic
from gankit.setup import held_out, load_parts


@torch.no_grad()
def upscale(G: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """G applied to low-resolution images x (N, C, h, w) in [-1, 1], in eval mode and in batches; CPU, clamped."""
    device = next(G.parameters()).device
    with eval_mode(G):
        return torch.cat([G(c.to(device)).float().clamp(-1, 1).cpu() for c in x.split(batch_size)])


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure  # torchmetrics loads slowly

    return float(structural_similarity_index_measure((a + 1) / 2, (b + 1) / 2, data_range=1.0))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (N,) in dB, images in [-1, 1] read as [0, 1]."""
    mse = (((a - b) / 2) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def score(images: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor | None, classifier,
          reference: torch.Tensor | None = None) -> dict[str, dict]:
    """For each named set of upscaled images (N, C, H, W), its PSNR and SSIM against the originals x, the share the
    data set's classifier assigns to the true labels y, and the FID of its classifier features against x's. The
    originals get a row too: their accuracy, and as FID floor the distance between x and `reference` (other real
    images) when given."""
    feats_x, logits_x = clf.predict(classifier.model, x)
    rows = {}
    for name, im in images.items():
        f, logits = clf.predict(classifier.model, im)
        rows[name] = {"psnr": psnr(im, x).mean().item(), "ssim": _ssim(im, x), "fid": fid_from_features(f, feats_x)}
        if y is not None:
            rows[name]["class_acc"] = (logits.argmax(1) == y).double().mean().item()
    rows["originals"] = {"psnr": float("inf"), "ssim": 1.0,
                         "fid": fid_from_features(clf.predict(classifier.model, reference)[0], feats_x)
                         if reference is not None else 0.0}
    if y is not None:
        rows["originals"]["class_acc"] = (logits_x.argmax(1) == y).double().mean().item()
    return rows


def table(rows: dict[str, dict], title: str) -> str:
    lines = [f"{title}\n", "| images | PSNR (dB) | SSIM | class accuracy | FID |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        acc = f"{r['class_acc']:.2%}" if "class_acc" in r else ""
        p = "" if r["psnr"] == float("inf") else f"{r['psnr']:.2f}"
        lines.append(f"| {name} | {p} | {r['ssim']:.4f} | {acc} | {r['fid']:.3g} |")
    return "\n".join(lines) + "\n"


def evaluate(G: nn.Module, x: torch.Tensor, y: torch.Tensor | None, scale: int, classifier,
             reference: torch.Tensor | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Downscale the originals x, upscale them with bicubic and with G; (scores by set, the image sets)."""
    x_lr = downscale(x, scale)
    sets = {"bicubic": upscale_bicubic(x_lr, scale), "G": upscale(G, x_lr)}
    return score(sets, x, y, classifier, reference), {"low-res": x_lr, **sets}


def comparison_sheet(sets: dict[str, torch.Tensor], x: torch.Tensor, path: Path, n: int = 10) -> Path:
    """Rows of n examples: low-res (nearest-neighbour enlarged), bicubic, G, original."""
    lr = sets["low-res"][:n]
    rows = [F.interpolate(lr, size=x.shape[-2:], mode="nearest"), sets["bicubic"][:n], sets["G"][:n], x[:n]]
    return viz.save_rows(rows, path, ["low-res", "bicubic", "G", "original"])


def write_results(G, held, scale: int, classifier, folder: Path, extra: dict | None = None,
                  reference: torch.Tensor | None = None) -> dict:
    """Score G on a held-out Dataset and write results.json, results.md and sheet.png into folder; reference: other
    real images, for the originals' FID floor."""
    x, y = held.floats(), held.y.cpu() if held.y is not None else None
    rows, sets = evaluate(G, x, y, scale, classifier, None if reference is None else reference[: len(x)])
    record = {"rows": rows, "n": len(x), "scale": scale, "classifier_acc": classifier.accuracy, **(extra or {})}
    md = table(rows, f"{len(x)} images, {x.shape[-1] // scale} -> {x.shape[-1]} px")
    outputs.write_atomic(folder / "results.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    outputs.write_atomic(folder / "results.md", lambda tmp: tmp.write_text(md))
    comparison_sheet(sets, x, folder / "sheet.png")
    return rows


def load_upscaler(source: str | Path, device: str = "cpu", step: int | None = None) -> tuple[nn.Module, dict]:
    """G of an sr run (its averaged weights when kept) and the run's config."""
    saved = _read(source, step)
    return saved.generator().to(device), saved.config


def _read(source: str | Path, step: int | None) -> checkpoint.Saved:
    return checkpoint.read(source, step).require("upscale", " (trained with --config mnist-sr or --task sr)")


def upscale_images(source: str | Path, images: str, out: str | Path, from_high_res: bool = False,
                   device: str = "cpu", step: int | None = None) -> list[str]:
    """`gankit upscale`: upscale FILE.npz, DIR or heldout (the run's held-out originals) into a new folder out;
    originals (heldout, or from_high_res) are downscaled first and scored. Returns the files written. Every input
    is read and checked before the folder `out` is made; a failure leaves no folder behind."""
    _, step, device = run_arguments(0, step, device)
    if not isinstance(from_high_res, bool):
        raise ConfigError("from_high_res", f"expected True or False, got {quote(from_high_res)}")
    images = path_argument("images", images)
    out = check_new_folder(out, "upscale")
    saved = _read(source, step)
    G, cfg = saved.generator().to(device), config_mod.load(None, saved.config)
    if images == "heldout" or from_high_res:
        return _upscale_originals(G, cfg, images, out)
    x, y = read_images(images, model_channels(G), classes=saved.class_names or None)
    with staged_folder(out, "upscale") as stage:
        up = upscale(G, x)
        _finite(up)
        save_npz(stage / "upscaled.npz", up, labels=y)
        sets = {"low-res": x[:10], "bicubic": upscale_bicubic(x[:10], cfg.sr_scale), "G": up[:10]}
        viz.save_rows([F.interpolate(x[:10], size=up.shape[-2:], mode="nearest"), sets["bicubic"], sets["G"]],
                      stage / "sheet.png", ["input", "bicubic", "G"])
    return [str(out / "upscaled.npz"), str(out / "sheet.png")]


def _upscale_originals(G, cfg, images: str, out: Path) -> list[str]:
    """Originals (the run's held-out images, or high-resolution ones from a file): downscaled, upscaled, scored."""
    full, train, held = load_parts(cfg)
    if images == "heldout":
        held = held_out(held)
    else:
        x, y = read_images(images, model_channels(G), cfg.img_size, classes=full.class_names or full.num_classes)
        held = datasets.Dataset("images", ((x + 1) * 127.5).round().to(torch.uint8), y)
    classifier = clf.real_classifier(full) if full.num_classes >= 2 else None
    if classifier is None:
        raise UserError("upscale: scoring needs the run's data set to have class labels")
    if held.y is not None and held.num_classes == 0:
        held.class_names = list(full.class_names)
    with staged_folder(out, "upscale") as stage:
        write_results(G, held, cfg.sr_scale, classifier, stage, reference=train.floats())
        up = upscale(G, downscale(held.floats(), cfg.sr_scale))
        _finite(up)
        save_npz(stage / "upscaled.npz", up, labels=held.y)
    return [str(out / "upscaled.npz"), str(out / "sheet.png"), str(out / "results.json"), str(out / "results.md")]


def _finite(images: torch.Tensor) -> None:
    if not torch.isfinite(images).all():
        raise UserError("upscale: the run's G gave non-finite pixels; nothing is written")
