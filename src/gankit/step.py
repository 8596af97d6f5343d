"""One training step of G and D: the survey's recipe, shared by `train()` and `gankit bench`.

Per step, `d_steps` updates of D, each (1) a real minibatch through D, (2) a generated minibatch through D, as
separate batches so that batch norm normalises each with its own statistics, (3) one update from the gradients of
both; then `g_steps` updates of G through D, whose weights stay out of G's update.

The fast path (each part measured by `gankit bench`, README "Speed"):
- nothing here waits for the device: the losses and D's outputs are summed on the device (`Tally`) and read by the
  loop every `log_every` steps, and the non-finite check before each optimizer step is a device tensor that a fused
  Adam honours by skipping the update, without a round trip to the host;
- G's update reuses the batch generated for the last D update (`reuse_fake`), one G forward per step instead of two;
- bf16 autocast where the hardware runs it fast (`precision`), NHWC layout (`channels_last`), fused Adam, and
  optionally torch.compile (`compile`).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from gankit import distributed, losses, registry
from gankit.augment import diff_augment
from gankit.config import Config
from gankit.latent import sample_labels, sample_z
from gankit.precision import autocast_dtype, cpu_has_fast_bf16  # noqa: F401  (bench and tests use both from here)

log = logging.getLogger("gankit")


# ----------------------------------------------------------------------------------------------------------------
# pieces of the recipe


def discriminate(D, x_real, y_real, x_fake, y_fake, batching: str, pack: int = 1):
    """D's logits for a real and a generated minibatch.

    separate: (1) the real minibatch through D, (2) the generated minibatch through D, each its own batch, so
    batch norm normalises real and fake with their own statistics, as the survey advises.
    mixed: one batch holding both, split afterwards.
    """
    if batching == "mixed":
        y = None if y_real is None else torch.cat([y_real, y_fake])
        logits = D(torch.cat([x_real, x_fake]), y)
        return logits.split([x_real.shape[0] // pack, x_fake.shape[0] // pack])
    return D(x_real, y_real), D(x_fake, y_fake)


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G, in one foreach call; buffers (batch-norm statistics, VBN's
    reference) are copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)


def ema_decay(cfg: Config, step: int) -> float:
    """The EMA decay after `step` updates: ema_decay, or with ema_rampup the shorter horizon of stylegan2-ada's
    warm-up, 1 / (1 - decay) <= ema_rampup * step, so G_ema starts as G and averages over more steps as it goes."""
    if not cfg.ema_rampup:
        return cfg.ema_decay
    horizon = max(1.0, cfg.ema_rampup * (step + 1))
    return min(cfg.ema_decay, 1.0 - 1.0 / horizon)


def lr_scale(cfg: Config, step: int) -> float:
    """1 until lr_decay_start of the run, then linearly down to 0 at the last step."""
    start = cfg.lr_decay_start * cfg.steps
    if step < start or cfg.lr_decay_start >= 1:
        return 1.0
    return max(0.0, (cfg.steps - step) / (cfg.steps - start))


def instance_noise_std(cfg: Config, step: int) -> float:
    """Linear annealing from inst_noise to 0 over inst_noise_steps (default: the whole run)."""
    span = cfg.inst_noise_steps or cfg.steps
    return cfg.inst_noise * max(0.0, 1.0 - step / span)


# ----------------------------------------------------------------------------------------------------------------
# the fast path's choices


def make_optimizers(cfg: Config, G: nn.Module, D: nn.Module, fused: bool = True):
    """Adam for G and for D. The fused kernel (one call for all parameters, CPU and CUDA) is faster and can skip
    an update on the device when its gradients are not finite."""
    kwargs = dict(betas=(cfg.beta1, cfg.beta2))
    device = next(G.parameters()).device
    if fused and device.type in ("cpu", "cuda"):
        kwargs["fused"] = True
    return (torch.optim.Adam(G.parameters(), lr=cfg.g_lr, **kwargs),
            torch.optim.Adam(D.parameters(), lr=cfg.d_lr, **kwargs))


def compile_module(module: nn.Module, mode: str) -> nn.Module:
    """torch.compile(module) with `mode` (off: the module itself). Compilation happens on the first calls; the
    caller times those."""
    if mode == "off":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode)


class Tally:
    """Running sums of the step's diagnostics, kept on the device; `read()` brings them to the host in one
    transfer. `nonfinite` counts the updates skipped because their loss or gradients were not finite."""

    KEYS = ("loss_d", "loss_g", "penalty", "D(x)", "D(G(z))")

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(self.KEYS), device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0

    def add(self, *values: torch.Tensor) -> None:
        self.sums += torch.stack([v.detach().float() for v in values])
        self.count += 1

    def read(self) -> dict[str, float]:
        """Means since the last read (one host synchronisation), then a fresh start."""
        means = (self.sums / max(self.count, 1)).tolist()
        self.sums.zero_()
        self.count = 0
        return dict(zip(self.KEYS, means))

    def nonfinite_updates(self) -> int:
        return int(self.nonfinite.item())

    def reset(self) -> None:
        self.sums.zero_()
        self.nonfinite.zero_()
        self.count = 0


# ----------------------------------------------------------------------------------------------------------------
# the step


class Step:
    """`step(real_batch, k)` trains G and D for training step k; `real_batch()` returns (x, y) on the device,
    x float in D's input range, y the labels or None."""

    def __init__(self, cfg: Config, G: nn.Module, D: nn.Module, G_ema: nn.Module | None,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, device: torch.device,
                 ctx: distributed.Context | None = None):
        self.cfg, self.G, self.D, self.G_ema, self.opt_g, self.opt_d = cfg, G, D, G_ema, opt_g, opt_d
        self.device, self.ctx = device, ctx or distributed.Context()
        self.dtype = autocast_dtype(cfg.precision, device)
        self.tally = Tally(device)
        # Penalties differentiate D's gradient (a double backward), which compiled graphs do not support.
        self.critic = registry.is_critic(cfg.loss)  # unbounded scores: a gradient penalty (WGAN-GP)
        self.relativistic = registry.is_relativistic(cfg.loss)  # G's loss reads D's logits on real data too
        penalised = cfg.r1_gamma > 0 or cfg.r2_gamma > 0 or self.critic
        self.G_fwd = compile_module(G, cfg.compile)
        self.D_fwd = compile_module(D, "off" if penalised else cfg.compile)
        if penalised and cfg.compile != "off":
            log.info("compile: D stays eager (its gradient penalty needs a double backward); G is compiled")
        self.compile_seconds = None  # when compiling: how long the first step took, compilation included
        self.lr_factor = 1.0  # the divergence guard's factor on both learning rates (guard.py)

    def set_lr(self, step: int) -> None:
        """Both learning rates for training step `step`: the decay schedule times the divergence guard's factor."""
        cfg = self.cfg
        for opt, lr in ((self.opt_g, cfg.g_lr), (self.opt_d, cfg.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * lr_scale(cfg, step) * self.lr_factor

    def autocast(self):
        return torch.autocast(self.device.type, self.dtype or torch.float32, enabled=self.dtype is not None)

    def d_input(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """What D sees: instance noise (annealed) and DiffAugment, applied alike to real and generated data."""
        sigma = instance_noise_std(self.cfg, step)
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
        return diff_augment(x, self.cfg.diffaug) if self.cfg.diffaug else x

    def noise(self):
        B = self.cfg.batch_size
        return (sample_z(B, self.cfg.z_dim, self.cfg.prior, device=self.device),
                sample_labels(B, self.cfg.c_dim, device=self.device))

    def update(self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        """Backward, average over processes, then the guarded optimizer step: an update whose loss or gradients
        are not finite is skipped and counted, so non-finite values never reach the weights."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(module, self.ctx)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        bad = ~torch.isfinite(loss.detach())
        if grads:
            bad = bad | ~torch.isfinite(torch.nn.utils.get_total_norm(grads))
        self.tally.nonfinite += bad
        if opt.defaults.get("fused"):
            opt.grad_scale, opt.found_inf = None, bad.float()  # the fused kernel skips the update on the device
            try:
                opt.step()
            finally:
                del opt.grad_scale, opt.found_inf
        elif not bad.item():
            opt.step()

    def __call__(self, real_batch, step: int) -> None:
        cfg = self.cfg
        t0 = time.perf_counter() if self.compile_seconds is None and cfg.compile != "off" else None
        self.set_lr(step)
        # ---- D: d_steps updates, each the survey's three steps ----------------------------------------------------
        for i in range(cfg.d_steps):
            (x_real, y_real), fake, (loss_d, penalty, d_real, d_fake) = self.d_update(real_batch, step,
                                                                                    last=i == cfg.d_steps - 1)
        # ---- G: g_steps updates through D, D's weights frozen ----------------------------------------------------
        self.D.requires_grad_(False)
        for i in range(cfg.g_steps):
            loss_g = self.g_update(x_real, y_real, fake if i == 0 else None, step)
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            ema_update(self.G_ema, self.G, ema_decay(cfg, step))

        self.tally.add(loss_d, loss_g, penalty, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean())
        if t0 is not None:
            self.compile_seconds = time.perf_counter() - t0

    def d_update(self, real_batch, step: int, last: bool):
        """One update of D: (1) a real minibatch through D, (2) a generated one, (3) one update from both. Returns
        the real batch, G's batch with its graph and labels (on the last update with reuse_fake, for G's update;
        else None) and the diagnostics (loss, penalty, D's logits on real and generated data)."""
        cfg, G, D = self.cfg, self.G_fwd, self.D_fwd
        fake_graph = None  # G's batch with its graph, for G's update when reuse_fake
        x_real, y_real = real_batch()
        z, y_fake = self.noise()
        if cfg.reuse_fake and last:
            with self.autocast():
                fake_graph = G(z, y_fake)
            x_fake = fake_graph.detach()
        else:
            with torch.no_grad(), self.autocast():
                x_fake = G(z, y_fake)
        xr, xf = self.d_input(x_real, step), self.d_input(x_fake.float(), step)
        lazy = step % cfg.r1_every == 0  # R1 and R2 share the lazy schedule
        r1, r2 = cfg.r1_gamma > 0 and lazy, cfg.r2_gamma > 0 and lazy
        if r1:
            xr.requires_grad_(True)
        if r2:
            xf.requires_grad_(True)
        with self.autocast():
            # (1) real minibatch -> D's scores; (2) generated minibatch -> D's scores
            d_real, d_fake = discriminate(D, xr, y_real, xf, y_fake, cfg.d_batching, cfg.pack)
            d_real, d_fake = d_real.float(), d_fake.float()
            loss_d = losses.d_loss(cfg.loss, d_real, d_fake, cfg.label_smooth)
            penalty = torch.zeros((), device=self.device)
            if r1:
                penalty = penalty + losses.r1_penalty(d_real, xr, cfg.r1_gamma * cfg.r1_every)
            if r2:  # R2: the same penalty on generated data
                penalty = penalty + losses.r1_penalty(d_fake, xf, cfg.r2_gamma * cfg.r1_every)
            if self.critic:
                alpha = torch.rand(xr.shape[0], *([1] * (xr.dim() - 1)), device=self.device)
                penalty = penalty + losses.gradient_penalty(lambda x: self.D(x, y_real).float(), xr, xf,
                                                            cfg.gp_weight, alpha)
        self.update(self.opt_d, self.D, loss_d + penalty)  # (3) one update of D from both batches' gradients
        fake = (fake_graph, y_fake) if fake_graph is not None else None
        return (x_real, y_real), fake, (loss_d, penalty, d_real, d_fake)

    def g_update(self, x_real, y_real, fake, step: int) -> torch.Tensor:
        """One update of G through D (whose weights the caller froze): on G's batch of D's last update when it kept
        its graph (fake: (images, labels)), else on a new one."""
        cfg, G, D = self.cfg, self.G_fwd, self.D_fwd
        with self.autocast():
            if fake is not None:
                x_fake, y_fake = fake[0].float(), fake[1]
            else:
                z, y_fake = self.noise()
                x_fake = G(z, y_fake).float()
            if cfg.feature_matching:
                _, phi_real = D(self.d_input(x_real, step), y_real, with_features=True)
                _, phi_fake = D(self.d_input(x_fake, step), y_fake, with_features=True)
                loss_g = losses.feature_matching(phi_real.float(), phi_fake.float())
            else:
                g_real = None
                if cfg.d_batching == "mixed":  # D sees the same kind of batch as in its own update
                    g_real, g_fake = discriminate(D, self.d_input(x_real, step), y_real, self.d_input(x_fake, step),
                                                  y_fake, "mixed", cfg.pack)
                else:
                    g_fake = D(self.d_input(x_fake, step), y_fake)
                    if self.relativistic:  # the pairing's real side, which G's loss reads but cannot change
                        with torch.no_grad():
                            g_real = D(self.d_input(x_real, step), y_real)
                loss_g = losses.g_loss(cfg.loss, g_fake.float(), None if g_real is None else g_real.float())
        self.update(self.opt_g, self.G, loss_g)
        return loss_g
