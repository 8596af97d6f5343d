"""Super-resolution: an image-conditional GAN (SRGAN, Ledig et al. 2017). G maps a low-resolution image to one
sr_scale times larger; D judges high-resolution images, real or upscaled.

Per step, on a minibatch of high-resolution training images x and their antialiased bicubic downscalings x_lr:
  (1) D's update: x through D, then G(x_lr) through D, as separate batches (the survey's recipe), one update;
  (2) G's update: content loss (pixel MSE against x: what PSNR rewards) plus adv_weight times G's adversarial loss
      (what makes textures sharp rather than averaged); adv_weight 0 is SRResNet, the content loss alone;
  (3) the averaged G (ema_decay), which is the one kept for upscaling.
The run's held-out images (holdout) are scored at the end: PSNR, SSIM, class accuracy and FID in the feature space of
the data set's classifier, beside bicubic upscaling (results.json, results.md).

    gankit train --config mnist-sr --data_dir DIR
    gankit upscale runs/sr-mnist --images heldout --out up/        # scored against the originals
    gankit upscale runs/sr-mnist --images small.npz --out up/      # 7x7 images -> 28x28
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit import checkpoint, losses, viz
from gankit.apps.common import AppState, Watch, single_device
from gankit.config import Config
from gankit.errors import ConfigError, UserError
from gankit.metrics import classifier as clf
from gankit.metrics.fid import fid_from_features
from gankit.models import sr as sr_models
from gankit.models.sr import downscale, upscale_bicubic
from gankit.step import Step, Tally, ema_update, lr_scale, make_optimizers


class SRTally(Tally):
    KEYS = ("loss_content", "loss_adv", "loss_d", "D(x)", "D(G(z))")


class SRStep(Step):
    """`step(batch, k)`: batch() returns (x_lr, x) on the device, x (B, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: Config, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, opt_g, opt_d, device):
        super().__init__(cfg, G, D, G_ema, opt_g, opt_d, device)
        self.tally = SRTally(device)

    def __call__(self, batch, step: int) -> None:
        cfg, G, D = self.cfg, self.G_fwd, self.D_fwd
        for opt, lr in ((self.opt_g, cfg.g_lr), (self.opt_d, cfg.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * lr_scale(cfg, step)
        x_lr, x = batch()
        with self.autocast():
            sr = G(x_lr).float()                                                # (B, C, H, W), graph kept for (2)
        zero = torch.zeros((), device=self.device)
        loss_d, d_real, d_fake = zero, zero, zero
        # ---- (1) D: the real high-resolution batch, then the upscaled one -----------------------------------------
        if cfg.adv_weight > 0:
            with self.autocast():
                d_real, d_fake = D(x).float(), D(sr.detach().clamp(-1, 1)).float()
                loss_d = losses.d_loss(cfg.loss, d_real, d_fake, cfg.label_smooth)
            self.update(self.opt_d, self.D, loss_d)
        # ---- (2) G: content loss plus the adversarial loss through D, D's weights frozen ---------------------------
        content = F.mse_loss(sr, x)
        adv = zero
        if cfg.adv_weight > 0:
            self.D.requires_grad_(False)
            with self.autocast():
                adv = losses.g_loss(cfg.loss, D(sr.clamp(-1, 1)).float())
            self.D.requires_grad_(True)
        self.update(self.opt_g, self.G, content + cfg.adv_weight * adv)
        # ---- (3) the averaged G -------------------------------------------------------------------------------------
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, cfg.ema_decay)
        self.tally.add(content, adv, loss_d, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean())


def _check(cfg: Config, data) -> None:
    if data.is_points:
        raise ConfigError("data", "task sr works on images")
    if cfg.img_size % cfg.sr_scale or cfg.img_size // cfg.sr_scale < 2:
        raise ConfigError("sr_scale", f"img_size {cfg.img_size} must be a multiple of sr_scale {cfg.sr_scale}, with "
                                      "at least 2 low-resolution pixels a side")


@torch.no_grad()
def upscale(G: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """G applied to low-resolution images x (N, C, h, w) in [-1, 1], in eval mode and in batches; CPU, clamped."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(c.to(device)).float().clamp(-1, 1).cpu() for c in x.split(batch_size)])
    finally:
        G.train(was_training)


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure

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


def train(cfg: Config, resume: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train the super-resolution GAN as `cfg` says; returns the run folder."""
    from gankit.train import Batches, load_parts, seed_everything
    from gankit import distributed

    # ---- set-up: data (high-resolution images and their downscalings), models, optimizers, state ------------------
    device = single_device(cfg)
    t_begin, cpu_begin = time.perf_counter(), time.process_time()
    full, data, held_data = load_parts(cfg)         # held_data: the holdout examples, or None
    _check(cfg, data)
    cfg = dataclasses.replace(cfg, channels=data.shape[0])
    data.to(device)
    x_lr_all = downscale(data.batch(), cfg.sr_scale)                            # (N, C, h, w), made once
    seed_everything(cfg.seed)
    G = sr_models.Generator(cfg.sr_scale, cfg.channels, cfg.g_width, cfg.g_layers).to(device)
    D = sr_models.Discriminator(cfg.channels, cfg.d_width).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay else None
    opt_g, opt_d = make_optimizers(cfg, G, D)
    state = AppState(G, D, G_ema, opt_g, opt_d, cfg.to_dict(), list(data.class_names))
    if resume:
        state.restore(checkpoint.load(checkpoint.find(resume), map_location=device))
        if state.step >= cfg.steps:
            raise ConfigError("steps", f"the run is already at step {state.step}; pass a larger --steps to continue it")
    step = SRStep(cfg, G, D, G_ema, opt_g, opt_d, device)
    batches = Batches(len(data), cfg.batch_size, cfg.seed, distributed.Context(), device)

    def batch():
        idx = batches(state.batches)
        state.batches += 1
        return x_lr_all[idx], data.batch(idx)

    fixed = data.batch(torch.arange(min(10, len(data)), device=device)).cpu()   # the pictures' examples
    held = held_data.floats() if held_data is not None else None
    kept = G_ema if G_ema is not None else G

    # ---- the loop, and the watching -----------------------------------------------------------------------------
    watch = Watch(cfg, state, resume, progress, force)
    while state.step < cfg.steps:
        step(batch, state.step)
        due = watch.advance(step)                      # counters, bar, and the divergence check when anything is due
        if due is None:
            continue
        due_log, due_eval, due_pictures, due_ckpt = due
        if due_log:
            row = step.tally.read()
            watch.record(row)
            if watch.bar is not None:
                watch.bar.set_postfix_str(f"content {row['loss_content']:.4f} adv {row['loss_adv']:.3f} "
                                          f"loss_d {row['loss_d']:.3f}")
        if due_eval and held is not None:
            x_lr = downscale(held, cfg.sr_scale)
            watch.record({"eval/psnr": psnr(upscale(kept, x_lr), held).mean().item(),
                          "eval/psnr_bicubic": psnr(upscale_bicubic(x_lr, cfg.sr_scale), held).mean().item()})
        if due_pictures:
            x_lr = downscale(fixed, cfg.sr_scale)
            sets = {"low-res": x_lr, "bicubic": upscale_bicubic(x_lr, cfg.sr_scale), "G": upscale(kept, x_lr)}
            watch.writer.submit(comparison_sheet, sets, fixed, watch.dir / "samples" / f"step-{state.step:07d}.png")
        if due_ckpt:
            watch.checkpoint()
    watch.close()

    # ---- the result: the held-out images upscaled by G beside bicubic ------------------------------------------
    print(f"run:         {watch.dir}\ncheckpoint:  {watch.dir / 'checkpoints' / checkpoint.LATEST}")
    if held is not None and data.num_classes >= 2:
        rows = write_results(kept, held_data, cfg.sr_scale, clf.real_classifier(full), watch.dir,
                             {"train_seconds": round(time.perf_counter() - t_begin, 1),
                              "train_cpu_seconds": round(time.process_time() - cpu_begin, 1)}, data.floats())
        print(table(rows, f"held-out images ({cfg.holdout}), {cfg.img_size // cfg.sr_scale} -> {cfg.img_size} px"))
    return watch.dir


def write_results(G, held, scale: int, classifier, folder: Path, extra: dict | None = None,
                  reference: torch.Tensor | None = None) -> dict:
    """Score G on a held-out Dataset and write results.json, results.md and sheet.png into folder; reference: other
    real images, for the originals' FID floor."""
    x, y = held.floats(), held.y.cpu() if held.y is not None else None
    rows, sets = evaluate(G, x, y, scale, classifier, None if reference is None else reference[: len(x)])
    (folder / "results.json").write_text(json.dumps({"rows": rows, "n": len(x), "scale": scale,
                                                     "classifier_acc": classifier.accuracy, **(extra or {})},
                                                    indent=1))
    (folder / "results.md").write_text(table(rows, f"{len(x)} images, {x.shape[-1] // scale} -> {x.shape[-1]} px"))
    comparison_sheet(sets, x, folder / "sheet.png")
    return rows


def load_upscaler(source: str | Path, device: str = "cpu", step: int | None = None) -> tuple[nn.Module, dict]:
    """G of an sr run (its averaged weights when kept) and the run's config."""
    state = checkpoint.load(checkpoint.find(source, step))
    if state["config"].get("task") != "sr":
        raise UserError(f"upscale: {source} is not a run of task sr (trained with --config mnist-sr or --task sr)")
    return checkpoint.generator_from_state(state).to(device).eval(), state["config"]


def upscale_images(source: str | Path, images: str, out: str | Path, from_high_res: bool = False,
                   device: str = "cpu", step: int | None = None) -> list[str]:
    """`gankit upscale`: upscale FILE.npz, DIR or heldout (the run's held-out originals) into a new folder out;
    originals (heldout, or from_high_res) are downscaled first and scored. Returns the files written."""
    from gankit import config as config_mod, data as datasets
    from gankit.apps.common import new_folder, read_images, save_npz
    from gankit.train import held_out, load_parts

    G, saved = load_upscaler(source, device, step)
    cfg = config_mod.load(None, saved)
    out = new_folder(out, "upscale")
    if images == "heldout" or from_high_res:
        full, train, held = load_parts(cfg)
        if images == "heldout":
            held = held_out(held)
        else:
            x, y = read_images(images, cfg.channels, cfg.img_size)
            held = datasets.Dataset("images", ((x + 1) * 127.5).round().to(torch.uint8), y)
        classifier = clf.real_classifier(full) if full.num_classes >= 2 else None
        if classifier is None:
            raise UserError("upscale: scoring needs the run's data set to have class labels")
        if held.y is not None and held.num_classes == 0:
            held.class_names = list(full.class_names)
        rows = write_results(G, held, cfg.sr_scale, classifier, out, reference=train.floats())
        x_lr = downscale(held.floats(), cfg.sr_scale)
        save_npz(out / "upscaled.npz", upscale(G, x_lr), labels=held.y)
        return [str(out / "upscaled.npz"), str(out / "sheet.png"), str(out / "results.json"), str(out / "results.md")]
    x, y = read_images(images, cfg.channels)
    up = upscale(G, x)
    save_npz(out / "upscaled.npz", up, labels=y)
    sets = {"low-res": x[:10], "bicubic": upscale_bicubic(x[:10], cfg.sr_scale), "G": up[:10]}
    viz.save_rows([F.interpolate(x[:10], size=up.shape[-2:], mode="nearest"), sets["bicubic"], sets["G"]],
                  out / "sheet.png", ["input", "bicubic", "G"])
    return [str(out / "upscaled.npz"), str(out / "sheet.png")]
