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
    gankit upscale runs/sr-mnist --images heldout --out up/        # in use: gankit/tasks/sr/upscale.py
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit import distributed, losses
from gankit.tasks.sr.upscale import comparison_sheet, psnr, table, upscale, write_results
from gankit.checkpoint import LATEST
from gankit.config import Config
from gankit.data.stream import Batches
from gankit.errors import ConfigError
from gankit.metrics import classifier as clf
from gankit.models.sr import downscale, upscale_bicubic
from gankit.session import Trainer
from gankit.setup import check_batch_size, load_parts
from gankit.step import Step, Tally, ema_decay, ema_update
from gankit.tasks.common import single_device, train_state


class SRTally(Tally):
    KEYS = ("loss_content", "loss_adv", "loss_d", "D(x)", "D(G(z))")


class SRStep(Step):
    """`step(batch, k)`: batch() returns (x_lr, x) on the device, x (B, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: Config, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, opt_g, opt_d, device):
        super().__init__(cfg, G, D, G_ema, opt_g, opt_d, device)
        self.tally = SRTally(device)

    def __call__(self, batch, step: int) -> None:
        cfg, G, D = self.cfg, self.G_fwd, self.D_fwd
        self.set_lr(step)
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
            ema_update(self.G_ema, self.G, ema_decay(cfg, step))
        self.tally.add(content, adv, loss_d, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean())


def _check(cfg: Config, data) -> None:
    if data.is_points:
        raise ConfigError("data", "task sr works on images")
    if cfg.img_size % cfg.sr_scale or cfg.img_size // cfg.sr_scale < 2:
        raise ConfigError("sr_scale", f"img_size {cfg.img_size} must be a multiple of sr_scale {cfg.sr_scale}, with "
                                      "at least 2 low-resolution pixels a side")


class SRTrainer(Trainer):
    def __init__(self, cfg: Config):
        self.device = device = single_device(cfg)
        self.t_begin, self.cpu_begin = time.perf_counter(), time.process_time()
        self.full, data, self.held_data = load_parts(cfg)        # held_data: the holdout examples, or None
        _check(cfg, data)
        check_batch_size(cfg, data)
        self.cfg = cfg = dataclasses.replace(cfg, channels=data.shape[0])
        self.data = data.to(device)
        self.x_lr_all = downscale(data.batch(), cfg.sr_scale)                   # (N, C, h, w), made once
        self.state = s = train_state(cfg, data.shape, device, list(data.class_names))   # srresnet's G and D
        G, G_ema = s.G, s.G_ema
        self.step = SRStep(cfg, G, s.D, G_ema, s.opt_g, s.opt_d, device)
        self.batches = Batches(len(data), cfg.batch_size, cfg.seed, distributed.Context(), device)
        self.fixed = data.batch(torch.arange(min(10, len(data)), device=device)).cpu()   # the pictures' examples
        self.held = self.held_data.floats() if self.held_data is not None else None
        self.kept = G_ema if G_ema is not None else G
        self.evaluates = self.held is not None

    def batch(self):
        """(x_lr, x): a batch of training images and their downscalings."""
        idx = self.batches(self.state.batches)
        self.state.batches += 1
        return self.x_lr_all[idx], self.data.batch(idx)

    def train_step(self, k: int) -> None:
        self.step(self.batch, k)

    def pictures(self, run_dir: Path, k: int, writer, rec) -> None:
        x_lr = downscale(self.fixed, self.cfg.sr_scale)
        sets = {"low-res": x_lr, "bicubic": upscale_bicubic(x_lr, self.cfg.sr_scale), "G": upscale(self.kept, x_lr)}
        writer.submit(comparison_sheet, sets, self.fixed, run_dir / "samples" / f"step-{k:07d}.png")

    def evaluate(self, run_dir: Path, k: int, writer) -> dict:
        x_lr = downscale(self.held, self.cfg.sr_scale)
        return {"eval/psnr": psnr(upscale(self.kept, x_lr), self.held).mean().item(),
                "eval/psnr_bicubic": psnr(upscale_bicubic(x_lr, self.cfg.sr_scale), self.held).mean().item()}

    def postfix(self, row: dict) -> str:
        return f"content {row['loss_content']:.4f} adv {row['loss_adv']:.3f} loss_d {row['loss_d']:.3f}"

    def finish(self, run_dir: Path, last: dict) -> None:
        """The result: the held-out images upscaled by G beside bicubic (results.json, results.md, sheet.png)."""
        cfg = self.cfg
        print(f"run:         {run_dir}\ncheckpoint:  {run_dir / 'checkpoints' / LATEST}")
        if self.held is not None and self.data.num_classes >= 2:
            rows = write_results(self.kept, self.held_data, cfg.sr_scale, clf.real_classifier(self.full), run_dir,
                                 {"train_seconds": round(time.perf_counter() - self.t_begin, 1),
                                  "train_cpu_seconds": round(time.process_time() - self.cpu_begin, 1)},
                                 self.data.floats())
            print(table(rows, f"held-out images ({cfg.holdout}), {cfg.img_size // cfg.sr_scale} -> {cfg.img_size} px"))
