"""Next-frame prediction: a conditional GAN that samples one sharp future per noise vector (SAVP, Lee et al. 2018;
pix2pix's objective, Isola et al. 2017). G maps the `context` past frames and z to the next `horizon` frames; D
judges (context, future) sequences, real or predicted.

Per step, on a minibatch of training windows (context + horizon frames, each from a random place in its sequence):
  (1) D's update, when adv_weight > 0: (context, the true future) through D, then (context, G's future), as
      separate batches, one update;
  (2) G's update: l1_weight times the L1 distance to the true future (what a regression minimises: it predicts the
      median of the possible futures, a blur where they differ) plus adv_weight times G's adversarial loss through D
      (what makes each sampled future sharp); adv_weight 0 is the regression baseline with the same G. L1 alone
      rewards G for ignoring z (the median future is its best answer whatever z says); two switches make it use z:
      variety_k > 1 draws k futures per context and counts the L1 term of the closest only (best of many: Gupta et
      al. 2018, Social GAN; Bhattacharyya et al. 2018), and ms_weight > 0 adds MSGAN's mode-seeking term on two
      draws of one context (Mao et al. 2019). D sees one draw per context either way;
  (3) the averaged G (ema_decay), the one kept for predicting.
The run's held-out sequences (whose digits training never saw) are scored at the end: PSNR and SSIM per frame, mean
and best of K, sharpness and diversity, beside copying the last frame (results.json, results.md).

    gankit train --config smmnist-predict --data_dir DIR
    gankit predict runs/unet-smoving-mnist --context heldout --futures 8 --out futures/   # futures.py, beside
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from gankit import distributed, losses
from gankit.tasks.predict.futures import EVAL_FUTURES, SHEET_FUTURES, sample_futures, sheet, table, write_results
from gankit.checkpoint import LATEST
from gankit.config import Config
from gankit.data.moving import sequence_parts
from gankit.data.stream import Batches
from gankit.errors import ConfigError
from gankit.latent import sample_z
from gankit.models.predict import stack
from gankit.session import Trainer
from gankit.setup import check_batch_size
from gankit.step import Step, Tally, ema_decay, ema_update
from gankit.tasks.common import single_device, train_state


class PredictTally(Tally):
    KEYS = ("loss_l1", "loss_adv", "loss_ms", "loss_d", "D(x)", "D(G(z))")


MS_EPS = 1e-5  # MSGAN's code: 1 / (ratio + 1e-5)


def variety_l1(fakes: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """The variety (best-of-many) L1 term: fakes (k, B, h*C, H, W), k futures of each of B contexts, future
    (B, h*C, H, W) -> the mean over the contexts of the smallest of the k per-sample L1 distances. Only the closest
    draw is pulled towards the truth, so the others may stay at other possible futures (with k = 1: plain L1)."""
    per_draw = (fakes - future).abs().flatten(2).mean(2)                       # (k, B)
    return per_draw.min(0).values.mean()


def mode_seeking(f1: torch.Tensor, f2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """MSGAN's mode-seeking term (Mao et al. 2019), as their code computes it over the batch: 1 / (ratio + eps),
    ratio = mean |f1 - f2| / mean |z1 - z2| for two futures f1, f2 of the same contexts from z1, z2. Minimising it
    pushes the two futures apart, the more the closer they are."""
    ratio = (f1 - f2).abs().mean() / (z1 - z2).abs().mean()
    return 1 / (ratio + MS_EPS)


class PredictStep(Step):
    """`step(batch, k)`: batch() returns (context, future) on the device, stacked frames (B, c*C, H, W) and
    (B, h*C, H, W) in [-1, 1]."""

    def __init__(self, cfg: Config, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, opt_g, opt_d, device):
        super().__init__(cfg, G, D, G_ema, opt_g, opt_d, device)
        self.tally = PredictTally(device)

    def draws(self) -> int:
        """Futures G draws per context each step: variety_k for the variety loss, at least 2 for mode seeking."""
        return max(self.cfg.variety_k, 2 if self.cfg.ms_weight > 0 else 1)

    def futures(self, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """n = draws() futures of each context in one forward: -> fakes (n, B, h*C, H, W), z (n, B, z_dim); draw j
        of context i is row j * B + i of G's batch."""
        n, B = self.draws(), past.shape[0]
        z = sample_z(n * B, self.cfg.z_dim, self.cfg.prior, device=self.device)
        with self.autocast():
            fake = self.G_fwd(past if n == 1 else past.repeat(n, 1, 1, 1), z).float()
        return fake.unflatten(0, (n, B)), z.unflatten(0, (n, B))

    def __call__(self, batch, step: int) -> None:
        cfg, D = self.cfg, self.D_fwd
        self.set_lr(step)
        past, future = batch()
        fakes, z = self.futures(past)                                      # graph kept for (2)
        fake = fakes[0]                                                    # (B, h*C, H, W): the draw D judges
        zero = torch.zeros((), device=self.device)
        loss_d, d_real, d_fake, adv, ms = zero, zero, zero, zero, zero
        # ---- (1) D: the true futures, then G's (one draw per context), each after its context --------------------
        if cfg.adv_weight > 0:
            with self.autocast():
                d_real, d_fake = D(future, past).float(), D(fake.detach().clamp(-1, 1), past).float()
                loss_d = losses.d_loss(cfg.loss, d_real, d_fake, cfg.label_smooth)
            self.update(self.opt_d, self.D, loss_d)
        # ---- (2) G: L1 to the true future (of the closest of variety_k draws), the adversarial loss through D (D's
        # weights frozen), and the mode-seeking term on two draws of the same contexts -----------------------------
        l1 = variety_l1(fakes[:cfg.variety_k], future)                      # k = 1: plain L1 of the first draw
        if cfg.adv_weight > 0:
            self.D.requires_grad_(False)
            with self.autocast():
                adv = losses.g_loss(cfg.loss, D(fake.clamp(-1, 1), past).float())
            self.D.requires_grad_(True)
        if cfg.ms_weight > 0:
            ms = mode_seeking(fakes[0], fakes[1], z[0], z[1])
        self.update(self.opt_g, self.G, cfg.l1_weight * l1 + cfg.adv_weight * adv + cfg.ms_weight * ms)
        # ---- (3) the averaged G -------------------------------------------------------------------------------------
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, ema_decay(cfg, step))
        self.tally.add(l1, adv, ms, loss_d, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean())


def _resolve(cfg: Config, data) -> Config:
    """cfg with the data's channels and frame size; what only the data can tell is checked."""
    T, C, H, W = data.shape
    if H != W or H != cfg.img_size:
        raise ConfigError("img_size", f"the sequences are {H} x {W} px, not {cfg.img_size}")
    if T < cfg.context + cfg.horizon:
        raise ConfigError("frames", f"the sequences hold {T} frames, fewer than context + horizon "
                                    f"{cfg.context + cfg.horizon}")
    check_batch_size(cfg, data)
    return dataclasses.replace(cfg, channels=C)


class PredictTrainer(Trainer):
    def __init__(self, cfg: Config):
        self.device = device = single_device(cfg)
        self.t_begin, self.cpu_begin = time.perf_counter(), time.process_time()
        data, held = sequence_parts(cfg)                           # held: the held-out sequences, or None
        self.cfg = cfg = _resolve(cfg, data)
        self.data = data.to(device)
        self.state = s = train_state(cfg, data.shape, device, [])   # the unet G and D; shape (T, C, H, W)
        G, G_ema = s.G, s.G_ema
        self.step = PredictStep(cfg, G, s.D, G_ema, s.opt_g, s.opt_d, device)
        self.batches = Batches(len(data), cfg.batch_size, cfg.seed, distributed.Context(), device)
        self.held = held.floats() if held is not None else None
        shown = self.held if self.held is not None else data.floats()
        self.fixed = shown[:4]                                     # the pictures' sequences
        self.kept = G_ema if G_ema is not None else G
        self.evaluates = self.held is not None
        self.span = cfg.context + cfg.horizon
        self.offsets = data.shape[0] - self.span + 1               # where a window may start in a sequence

    def batch(self):
        """(context, future): windows of context + horizon frames at random places in a batch of sequences."""
        idx = self.batches(self.state.batches)
        self.state.batches += 1
        start = torch.randint(self.offsets, (len(idx),), device=self.device)
        t = start[:, None] + torch.arange(self.span, device=self.device)          # (B, c + h)
        seq = self.data.batch(idx)                                                 # (B, T, C, H, W)
        window = seq[torch.arange(len(idx), device=self.device)[:, None], t]        # (B, c + h, C, H, W)
        return stack(window[:, :self.cfg.context]), stack(window[:, self.cfg.context:])

    def train_step(self, k: int) -> None:
        self.step(self.batch, k)

    def pictures(self, run_dir: Path, k: int, writer, rec) -> None:
        fut = sample_futures(self.kept, self.fixed[:, :self.cfg.context], SHEET_FUTURES)
        writer.submit(sheet, self.fixed, fut, self.cfg.context, run_dir / "samples" / f"step-{k:07d}.png")

    def evaluate(self, run_dir: Path, k: int, writer) -> dict:
        cfg = self.cfg
        past, truth = self.held[:, :cfg.context], self.held[:, cfg.context: self.span]
        fut = sample_futures(self.kept, past, 1)[:, 0]
        return {"eval/l1": (fut - truth).abs().mean().item() / 2,
                "eval/l1_last_frame": (past[:, -1:] - truth).abs().mean().item() / 2}

    def postfix(self, row: dict) -> str:
        ms = f" ms {row['loss_ms']:.3g}" if self.cfg.ms_weight > 0 else ""
        return f"l1 {row['loss_l1']:.4f} adv {row['loss_adv']:.3f}{ms} loss_d {row['loss_d']:.3f}"

    def finish(self, run_dir: Path, last: dict) -> None:
        """The result: K futures of each held-out sequence scored beside copying the last frame."""
        cfg = self.cfg
        print(f"run:         {run_dir}\ncheckpoint:  {run_dir / 'checkpoints' / LATEST}")
        if self.held is None:
            return
        rows = write_results(self.kept, self.held, cfg.context, cfg.horizon, run_dir,
                             {"train_seconds": round(time.perf_counter() - self.t_begin, 1),
                              "train_cpu_seconds": round(time.process_time() - self.cpu_begin, 1),
                              "adv_weight": cfg.adv_weight, "variety_k": cfg.variety_k, "ms_weight": cfg.ms_weight,
                              "data": cfg.data})
        print(table(rows, f"held-out sequences ({len(self.held)}), {cfg.context} frames given, {cfg.horizon} "
                          f"predicted, K = {EVAL_FUTURES}"))
