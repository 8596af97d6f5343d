"""Missing labels (task ssl): the semi-supervised GAN (Salimans et al. 2016, section 5). The product is D, a classifier.

A few labelled examples (labels_per_class of each class, chosen by the seed) and all the other training examples,
unlabelled, train D as a (K+1)-way classifier: K real classes plus "generated". Per step:
  (1) D's update: cross-entropy on a labelled batch, plus real-vs-generated on an unlabelled and a generated batch
      (gankit.losses.ssl_d_loss), the real images randomly rotated, scaled and shifted (`distort`); with
      ssl_consistency, D's class prediction on an unlabelled batch is also pulled towards that of its weight average
      (the teacher, step 3) on another distortion of the same images (mean teacher, Tarvainen & Valpola 2017);
  (2) G's update by feature matching: the mean of D's last hidden features on G's batch matches that on the
      unlabelled batch (gankit.losses.feature_matching);
  (3) D's weights averaged (ema_decay): the averaged D is the classifier that is scored and kept.
Every eval_every steps and at the end the classifier's error on the held-out examples (holdout) is recorded; at the
end a plain supervised CNN trained on the same labelled examples is scored beside it (results.json).

    gankit train --config mnist-ssl --data_dir DIR --labels_per_class 10
    gankit classify runs/ssl-mnist --images heldout          # the classifier in use: gankit/tasks/ssl/classify.py
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit import distributed, losses, outputs, run
from gankit.tasks.ssl.classify import error
from gankit.checkpoint import LATEST, TrainState
from gankit.config import Config
from gankit.data.stream import Batches
from gankit.errors import ConfigError
from gankit.latent import sample_z
from gankit.metrics import classifier as clf
from gankit.models import ssl as ssl_models
from gankit.sample import Sampler
from gankit.session import Trainer
from gankit.setup import averaged_copy, check_batch_size, load_parts, seed_everything
from gankit.step import Step, Tally, ema_decay, ema_update, make_optimizers
from gankit.tasks.common import single_device

# Random affine distortions of the real images D sees, labelled and unlabelled: the digits stay digits, and 100
# labels count for many more (Simard et al. 2003 on MNIST). Rotation in degrees, scale factor, shift in pixels.
ROTATE, SCALE, SHIFT_PX = 10.0, 0.1, 2.0
INIT_BATCH = 500      # examples for D's data-dependent initialisation, as improved-gan
# The consistency term's weight rises over the first CONSISTENCY_RAMPUP steps (Tarvainen & Valpola's sigmoid ramp-up,
# exp(-5 (1 - t)^2)): early on the weight average is a poor teacher. A count of steps, not a share of the run, so
# that a run resumed with a larger --steps goes on exactly as it began.
CONSISTENCY_RAMPUP = 5000


def consistency_scale(step: int) -> float:
    t = min(1.0, step / CONSISTENCY_RAMPUP)
    return math.exp(-5 * (1 - t) ** 2)


def labelled_indices(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of per_class examples of every class (0 = all examples), chosen by a seeded permutation."""
    if per_class == 0:
        return torch.arange(len(y))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    y = y.cpu()
    picked = []
    for k in range(int(y.max()) + 1):
        of_k = perm[y[perm] == k][:per_class]
        if len(of_k) < per_class:
            raise ConfigError("labels_per_class", f"class {k} has only {len(of_k)} training examples")
        picked.append(of_k)
    return torch.cat(picked)


def distort(x: torch.Tensor, rotate: float = ROTATE, scale: float = SCALE, shift_px: float = SHIFT_PX):
    """Each image (B, C, H, W) in [-1, 1] rotated by up to `rotate` degrees, scaled by up to 1 +- `scale` and shifted
    by up to `shift_px` pixels, drawn per image from the global RNG (which checkpoints save); the background (-1)
    fills what comes in from outside."""
    b, h = x.shape[0], x.shape[-1]
    u = torch.rand(b, 4, device=x.device) * 2 - 1                                  # (B, 4) in [-1, 1]
    angle, zoom = u[:, 0] * math.radians(rotate), 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * 2 * shift_px / h], 1),
                         torch.stack([sin, cos, u[:, 3] * 2 * shift_px / h], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


class SSLTally(Tally):
    KEYS = ("loss_lab", "loss_unl", "loss_g", "loss_consistency", "acc_lab", "D(x)", "D(G(z))")


class SSLStep(Step):
    """`step(batch, k)`: one update of D, one of G, and D's average; batch() returns (x_lab, y_lab, x_unl)."""

    def __init__(self, cfg: Config, G: nn.Module, D: nn.Module, D_ema: nn.Module | None, opt_g, opt_d, device):
        super().__init__(cfg, G, D, None, opt_g, opt_d, device)
        self.D_ema = D_ema
        self.tally = SSLTally(device)

    def __call__(self, batch, step: int) -> None:
        cfg, G, D = self.cfg, self.G_fwd, self.D_fwd
        self.set_lr(step)
        x_lab, y_lab, x_unl = batch()
        z = sample_z(cfg.batch_size, cfg.z_dim, cfg.prior, device=self.device)

        # ---- (1) D: labelled, unlabelled and generated batches, each through D on its own ------------------------
        with self.autocast():
            fake = G(z)                                                  # (B, C, H, W), its graph kept for (2)
            l_lab = D(distort(x_lab)).float()                            # (B, K)
            l_unl, phi_real = D(distort(x_unl), with_features=True)
            l_fake = D(fake.detach()).float()
            supervised, unsupervised = losses.ssl_d_loss(l_lab, y_lab, l_unl.float(), l_fake)
            zero = torch.zeros((), device=self.device)
            entropy = losses.prediction_entropy(l_unl.float()) if cfg.ssl_entropy else zero
            consistency = zero
            if cfg.ssl_consistency:                                      # the weight average on another distortion
                with torch.no_grad():
                    teacher = self.D_ema(distort(x_unl)).float()
                consistency = losses.prediction_consistency(l_unl.float(), teacher)
        self.update(self.opt_d, self.D, supervised + cfg.unlabeled_weight * unsupervised + cfg.ssl_entropy * entropy
                    + cfg.ssl_consistency * consistency_scale(step) * consistency)

        # ---- (2) G: feature matching through D, whose weights stay out of G's update --------------------------------
        trainable = [p for p in self.D.parameters() if p.requires_grad]  # D's fixed scales stay fixed
        for p in trainable:
            p.requires_grad_(False)
        with self.autocast():
            _, phi_fake = D(fake, with_features=True)
            loss_g = losses.feature_matching(phi_real.float(), phi_fake.float())
        self.update(self.opt_g, self.G, loss_g)
        for p in trainable:
            p.requires_grad_(True)

        # ---- (3) the averaged classifier --------------------------------------------------------------------------
        if self.D_ema is not None:
            ema_update(self.D_ema, self.D, ema_decay(cfg, step))
        acc = (l_lab.argmax(1) == y_lab).float().mean()
        self.tally.add(supervised, unsupervised, loss_g, consistency, acc,
                       torch.sigmoid(torch.logsumexp(l_unl.float(), 1)).mean(),
                       torch.sigmoid(torch.logsumexp(l_fake, 1)).mean())


def build_models(cfg: Config, shape: tuple[int, ...], num_classes: int):
    G = ssl_models.Generator(cfg.z_dim, shape, cfg.g_width, cfg.g_layers)
    D = ssl_models.Discriminator(shape, num_classes, cfg.d_width, cfg.d_layers)
    return G, D


def supervised_baseline(x: torch.Tensor, y: torch.Tensor, num_classes: int, held_x, held_y, seed: int) -> dict:
    """The data set classifier's recipe (a small CNN, random shifts; metrics/classifier.py) trained on the labelled
    examples alone: what the labels give without the unlabelled data and the GAN."""
    t0 = time.perf_counter()
    model = clf.fit(x, y, num_classes, seed=seed)
    return {"baseline_error": 1 - clf.accuracy(model, held_x, held_y),
            "baseline_seconds": round(time.perf_counter() - t0, 1)}


def _check(cfg: Config, data) -> None:
    if data.y is None or data.num_classes < 2:
        raise ConfigError("data", f"task ssl needs a data set with class labels; {cfg.data} has none")
    if data.is_points:
        raise ConfigError("data", "task ssl works on images")


class SSLTrainer(Trainer):
    evaluates = True

    def __init__(self, cfg: Config):
        self.device = device = single_device(cfg)
        self.t_begin, self.cpu_begin = time.perf_counter(), time.process_time()
        _, data, held = load_parts(cfg)                  # held: None without holdout, which config refuses
        _check(cfg, data)
        check_batch_size(cfg, data)
        if cfg.channels == 0:
            cfg = dataclasses.replace(cfg, channels=data.shape[0])
        self.cfg, self.data, self.held = cfg, data, held
        self.lab_idx = labelled_indices(data.y, cfg.labels_per_class, cfg.seed)
        data.to(device)
        seed_everything(cfg.seed)
        G, D = build_models(cfg, data.shape, data.num_classes)
        init_idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))[:INIT_BATCH]
        D.init_from_batch(data.batch(init_idx.to(device)).cpu())
        G.to(device), D.to(device)
        D_ema = averaged_copy(D, cfg.ema_decay)
        opt_g, opt_d = make_optimizers(cfg, G, D)
        self.state = TrainState(G, D, None, opt_g, opt_d, cfg.to_dict(), list(data.class_names), D_ema=D_ema)
        self.step = SSLStep(cfg, G, D, D_ema, opt_g, opt_d, device)
        ctx = distributed.Context()
        self.lab_batches = Batches(len(self.lab_idx), min(cfg.batch_size, len(self.lab_idx)), cfg.seed + 1, ctx,
                                   device)
        self.unl_batches = Batches(len(data), cfg.batch_size, cfg.seed, ctx, device)
        self.lab_idx = self.lab_idx.to(device)
        self.held_x, self.held_y = held.floats(), held.y.cpu()
        self.classifier = D_ema if D_ema is not None else D
        self.fixed_z = sample_z(cfg.grid_n, cfg.z_dim, cfg.prior, torch.Generator().manual_seed(cfg.seed)).to(device)

    def batch(self):
        """(x_lab, y_lab, x_unl): labelled batches repeat the labelled set (as improved-gan tiles it)."""
        k = self.state.batches
        self.state.batches += 1
        idx = self.lab_idx[self.lab_batches(k)]
        idx = idx.repeat((self.cfg.batch_size + len(idx) - 1) // len(idx))[: self.cfg.batch_size]
        return self.data.batch(idx), self.data.y[idx], self.data.batch(self.unl_batches(k))

    def train_step(self, k: int) -> None:
        self.step(self.batch, k)

    def begin(self, run_dir: Path, writer, rec, resumed: bool) -> None:
        self.sampler = Sampler(self.state.G, self.cfg.prior, self.data.class_names, {"config": self.cfg.to_dict()})

    def pictures(self, run_dir: Path, k: int, writer, rec) -> None:
        x = run.render_samples(self.sampler, self.fixed_z, None)
        writer.submit(run.save_pictures, x, self.data, run_dir, k, self.cfg, rec)

    def evaluate(self, run_dir: Path, k: int, writer) -> dict:
        return {"eval/held_out_error": error(self.classifier, self.held_x, self.held_y)}

    def postfix(self, row: dict) -> str:
        text = f"loss_lab {row['loss_lab']:.3f} loss_unl {row['loss_unl']:.3f} loss_g {row['loss_g']:.3f}"
        if "eval/held_out_error" in row:
            text += f" held-out error {row['eval/held_out_error']:.2%}"
        return text

    def finish(self, run_dir: Path, last: dict) -> None:
        """The result: the classifier's held-out error beside a supervised CNN on the same labels (results.json)."""
        data, lab, held_x, held_y = self.data, self.lab_idx.cpu(), self.held_x, self.held_y
        results = {"held_out_error": error(self.classifier, held_x, held_y),
                   "held_out_error_last_D": error(self.state.D, held_x, held_y),
                   "labelled": len(lab), "unlabelled": len(data) - len(lab), "held_out": len(self.held),
                   "steps": self.state.step, "train_seconds": round(time.perf_counter() - self.t_begin, 1),
                   "train_cpu_seconds": round(time.process_time() - self.cpu_begin, 1)}
        results.update(supervised_baseline(data.floats()[lab], data.y[lab.to(data.y.device)].cpu(), data.num_classes,
                                           held_x, held_y, self.cfg.seed))
        outputs.write_atomic(run_dir / "results.json", lambda tmp: tmp.write_text(json.dumps(results, indent=1)))
        print_results(run_dir, results)


def print_results(run_dir: Path, r: dict) -> None:
    print(f"run:         {run_dir}\n"
          f"classifier:  held-out error {r['held_out_error']:.2%} on {r['held_out']} images, from {r['labelled']} "
          f"labels and {r['unlabelled']} unlabelled images ({r['train_seconds']:.0f} s; "
          f"{r['train_cpu_seconds']:.0f} s of CPU)\n"
          f"baseline:    a supervised CNN on the same {r['labelled']} labels: {r['baseline_error']:.2%}\n"
          f"results:     {run_dir / 'results.json'}\n"
          f"checkpoint:  {run_dir / 'checkpoints' / LATEST}")
