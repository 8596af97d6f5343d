"""The training loop. `train()` reads top to bottom: set-up, then per step the survey's recipe for D
(a real minibatch through D, a generated minibatch through D, one update from the gradients of both), then G.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gankit import checkpoint, data as datasets, distributed, losses, metrics, models, viz
from gankit.augment import diff_augment
from gankit.config import RESUMABLE_FIELDS, Config, dump
from gankit.errors import ConfigError, UserError
from gankit.latent import sample_labels, sample_z
from gankit.sample import Sampler

log = logging.getLogger("gankit")


# ----------------------------------------------------------------------------------------------------------------
# set-up helpers


def resolve_device(name: str, ctx: distributed.Context) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{name} asked for, but torch sees no CUDA device; use cpu or auto")
        if name == "cuda":
            name = f"cuda:{ctx.local_rank}"
    return torch.device(name)


def load_data(cfg: Config) -> datasets.Dataset:
    return datasets.load(cfg.data, cfg.data_dir, cfg.img_size, cfg.channels, cfg.n_points)


def resolve(cfg: Config, data: datasets.Dataset, world_size: int = 1) -> Config:
    """Fill in what the data set decides (channels, class count) and check what only the data can tell."""
    changes = {}
    if not data.is_points and cfg.channels == 0:
        changes["channels"] = data.shape[0]
    if cfg.cond != "none":
        if data.num_classes < 2:
            raise ConfigError("cond", f"data set {cfg.data} has no class labels to condition on")
        if cfg.c_dim and cfg.c_dim != data.num_classes:
            raise ConfigError("c_dim", f"data set {cfg.data} has {data.num_classes} classes, not {cfg.c_dim}")
        changes["c_dim"] = data.num_classes
    if cfg.batch_size * world_size > len(data):
        raise ConfigError("batch_size", f"{cfg.batch_size} x {world_size} process(es) exceeds the {len(data)} "
                                        f"examples of {cfg.data}")
    if "virtual_batch" in (cfg.g_norm, cfg.d_norm) and cfg.vbn_ref_size > len(data):
        raise ConfigError("vbn_ref_size", f"{cfg.vbn_ref_size} exceeds the {len(data)} examples of {cfg.data}")
    if cfg.eval_metrics:
        metrics.check_names(_names(cfg.eval_metrics), "points" if data.is_points else "image", cfg.cond != "none",
                            "eval_metrics")
    return dataclasses.replace(cfg, **changes)


def _names(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


def new_run_dir(cfg: Config) -> Path:
    """runs/<name>: an explicit name that exists is an error; a default name is numbered until free."""
    root = Path(cfg.out)
    if cfg.name:
        path = root / cfg.name
        if path.exists():
            raise UserError(f"run folder {path} exists; continue it with --resume {path} or choose another --name")
    else:
        data = Path(cfg.data[len("folder:"):]).name if cfg.data.startswith("folder:") else cfg.data
        path = numbered(root, f"{cfg.model}-{'cond-' if cfg.cond != 'none' else ''}{data}")
    (path / "samples").mkdir(parents=True)
    (path / "checkpoints").mkdir()
    return path


def numbered(root: Path, stem: str) -> Path:
    """root/stem, or root/stem-2, root/stem-3, ...: the first that does not exist."""
    path, i = root / stem, 2
    while path.exists():
        path, i = root / f"{stem}-{i}", i + 1
    return path


def resume_config(run_dir: Path, overrides: dict) -> Config:
    """The saved config of a run, with only the fields that may change on resume overridden."""
    from gankit import config as config_mod

    saved = config_mod.read_yaml(str(run_dir / "config.yaml")) if (run_dir / "config.yaml").is_file() else None
    if saved is None:
        raise UserError(f"resume: {run_dir} is not a run folder (no config.yaml)")
    for key, value in overrides.items():
        if key in saved and config_mod.coerce(key, value) != saved[key] and key not in RESUMABLE_FIELDS:
            raise ConfigError(key, f"cannot change on resume (saved: {saved[key]!r}); only "
                                   f"{', '.join(RESUMABLE_FIELDS)} may change")
    return config_mod.load(None, {**saved, **{k: v for k, v in overrides.items() if k in RESUMABLE_FIELDS}})


class Batches:
    """Global batch number k of an endless sequence of epochs.

    Each epoch is a permutation seeded by (seed, epoch), so where training stands in the data is given by one
    counter, which the checkpoint saves; each rank takes its own slice of every global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, ctx: distributed.Context, device: torch.device):
        self.n, self.batch_size, self.seed, self.ctx, self.device = n, batch_size, seed, ctx, device
        self.per_epoch = n // (batch_size * ctx.world_size)
        self._epoch, self._perm = -1, None

    def __call__(self, k: int) -> torch.Tensor:
        epoch, i = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen).to(self.device)
        start = (i * self.ctx.world_size + self.ctx.rank) * self.batch_size
        return self._perm[start: start + self.batch_size]


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
def ema_update(G_ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.lerp_(p, 1 - decay)
    for be, b in zip(G_ema.buffers(), G.buffers()):  # batch-norm statistics and VBN's reference are copied
        be.copy_(b)


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


class Recorder:
    """Running means between records, written to metrics.jsonl and TensorBoard on the main process."""

    def __init__(self, run_dir: Path, ctx: distributed.Context, start_step: int):
        self.ctx, self.sums, self.count = ctx, {}, 0
        self.file = self.writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.file = open(run_dir / "metrics.jsonl", "a")
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def flush(self, step: int, nimg: int, device, extra: dict | None = None) -> dict:
        row = {k: distributed.mean(v / max(self.count, 1), self.ctx, device) for k, v in self.sums.items()}
        row.update(extra or {})
        self.sums, self.count = {}, 0
        self.write({"step": step, "nimg": nimg, **row})
        return row

    def write(self, row: dict) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for k, v in row.items():
            if k not in ("step", "nimg") and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.writer.close()


# ----------------------------------------------------------------------------------------------------------------
# the loop


def train(cfg: Config, resume: Path | None = None, progress: bool = True) -> Path:
    """Train G and D as `cfg` says; returns the run folder. With `resume`, continue that run exactly."""
    ctx = distributed.init("cuda" if cfg.device.startswith("cuda") or
                           (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device, ctx)
    data = load_data(cfg)
    cfg = resolve(cfg, data, ctx.world_size)
    data.to(device)
    run_dir = Path(resume) if resume else (new_run_dir(cfg) if ctx.is_main else None)
    run_dir = Path(_broadcast_obj(str(run_dir), ctx))
    if ctx.is_main:
        (run_dir / "config.yaml").write_text(dump(cfg))

    seed = cfg.seed + ctx.rank  # each rank draws its own noise
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    G, D = models.build(cfg, data.shape)
    G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay else None
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    batches = Batches(len(data), cfg.batch_size, cfg.seed, ctx, device)
    B, c_dim = cfg.batch_size, cfg.c_dim

    # Fixed inputs, drawn from their own generator so they do not depend on the training RNG: the noise of the
    # sample grids (labels cycle through the classes, one column per class) and virtual batch norm's references.
    fixed = torch.Generator().manual_seed(cfg.seed)
    n_fixed = cfg.eval_n if data.is_points else cfg.grid_n
    fixed_z = sample_z(n_fixed, cfg.z_dim, cfg.prior, fixed).to(device)
    fixed_y = (torch.arange(n_fixed) % c_dim).to(device) if c_dim else None
    ref_idx = torch.randperm(len(data), generator=fixed)[: cfg.vbn_ref_size].to(device)
    ref_y = data.y[ref_idx] if c_dim else None
    G.set_reference(sample_z(cfg.vbn_ref_size, cfg.z_dim, cfg.prior, fixed).to(device), ref_y)
    D.set_reference(data.x[ref_idx], ref_y)

    step, nimg, drawn = 0, 0, 0
    if resume:
        ckpt = checkpoint.load(checkpoint.find(run_dir), map_location=device)
        G.load_state_dict(ckpt["G"]), D.load_state_dict(ckpt["D"])
        opt_g.load_state_dict(ckpt["opt_g"]), opt_d.load_state_dict(ckpt["opt_d"])
        if G_ema is not None:
            G_ema.load_state_dict(ckpt["G_ema"])
        step, nimg, drawn = ckpt["step"], ckpt["nimg"], ckpt["batches"]
        checkpoint.set_rng_state(ckpt["rng"][ctx.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
        if step >= cfg.steps:
            raise ConfigError("steps", f"the run is already at step {step}; pass a larger --steps to continue it")
    else:
        distributed.broadcast_module(G, ctx), distributed.broadcast_module(D, ctx)
        if G_ema is not None:
            G_ema.load_state_dict(G.state_dict())

    rec = Recorder(run_dir, ctx, step)
    if resume:
        rec.write({"step": step, "nimg": nimg, "event": "resume"})
    sampler = Sampler(G_ema or G, cfg.prior, data.class_names, {"config": cfg.to_dict()})
    use_amp = cfg.amp and device.type == "cuda"
    bar = _progress(cfg, ctx, nimg, progress)

    def d_input(x: torch.Tensor) -> torch.Tensor:
        """What D sees: instance noise (annealed) and DiffAugment, applied alike to real and generated data."""
        sigma = instance_noise_std(cfg, step)
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
        return diff_augment(x, cfg.diffaug) if cfg.diffaug else x

    def real_batch():
        nonlocal drawn
        idx = batches(drawn)
        drawn += 1
        return data.x[idx], (data.y[idx] if c_dim else None)

    t_start, last = time.time(), {}
    while step < cfg.steps:
        for opt, lr in ((opt_g, cfg.g_lr), (opt_d, cfg.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * lr_scale(cfg, step)
        # ---- D: d_steps updates, each the survey's three steps --------------------------------------------------
        for _ in range(cfg.d_steps):
            x_real, y_real = real_batch()
            z, y_fake = sample_z(B, cfg.z_dim, cfg.prior, device=device), sample_labels(B, c_dim, device=device)
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
                x_fake = G(z, y_fake)
            xr, xf = d_input(x_real), d_input(x_fake.float())
            if cfg.r1_gamma:
                xr.requires_grad_(True)
            with torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
                # (1) real minibatch -> D's scores; (2) generated minibatch -> D's scores
                d_real, d_fake = discriminate(D, xr, y_real, xf, y_fake, cfg.d_batching, cfg.pack)
                d_real, d_fake = d_real.float(), d_fake.float()
                loss_d = losses.d_loss(cfg.loss, d_real, d_fake, cfg.label_smooth)
                penalty = torch.zeros((), device=device)
                if cfg.r1_gamma:
                    penalty = penalty + losses.r1_penalty(d_real, xr, cfg.r1_gamma)
                if cfg.loss == "wgan-gp":
                    alpha = torch.rand(B, *([1] * (xr.dim() - 1)), device=device)
                    penalty = penalty + losses.gradient_penalty(lambda x: D(x, y_real).float(), xr, xf,
                                                                cfg.gp_weight, alpha)
            opt_d.zero_grad(set_to_none=True)
            (loss_d + penalty).backward()  # gradients of the real and the generated batch accumulate
            distributed.average_gradients(D, ctx)
            opt_d.step()                   # (3) one update of D from both

        # ---- G: g_steps updates -------------------------------------------------------------------------------------
        D.requires_grad_(False)  # G's loss flows through D, but D's weights stay out of G's update
        for _ in range(cfg.g_steps):
            z, y_fake = sample_z(B, cfg.z_dim, cfg.prior, device=device), sample_labels(B, c_dim, device=device)
            with torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
                x_fake = G(z, y_fake).float()
                if cfg.feature_matching:
                    _, phi_real = D(d_input(x_real), y_real, with_features=True)
                    _, phi_fake = D(d_input(x_fake), y_fake, with_features=True)
                    loss_g = losses.feature_matching(phi_real.float(), phi_fake.float())
                else:
                    if cfg.d_batching == "mixed":  # D sees the same kind of batch as in its own update
                        _, g_fake = discriminate(D, d_input(x_real), y_real, d_input(x_fake), y_fake, "mixed", cfg.pack)
                    else:
                        g_fake = D(d_input(x_fake), y_fake)
                    loss_g = losses.g_loss(cfg.loss, g_fake.float())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            distributed.average_gradients(G, ctx)
            opt_g.step()
        D.requires_grad_(True)
        if G_ema is not None:
            ema_update(G_ema, G, cfg.ema_decay)

        step += 1
        nimg += B * ctx.world_size
        if not (math.isfinite(loss_d.item()) and math.isfinite(loss_g.item())):
            raise UserError(f"training diverged at step {step} (loss_d={loss_d.item()}, loss_g={loss_g.item()}); "
                            f"the last checkpoint is in {run_dir / 'checkpoints'}; try lower g_lr/d_lr")
        rec.add(loss_d=loss_d.item(), loss_g=loss_g.item(), penalty=penalty.item(),
                **{"D(x)": torch.sigmoid(d_real).mean().item(), "D(G(z))": torch.sigmoid(d_fake).mean().item()})

        # ---- watching it: records, pictures, evaluations, checkpoints ----------------------------------------------
        done = step == cfg.steps
        if step % cfg.log_every == 0 or done:
            elapsed = time.time() - t_start
            last = rec.flush(step, nimg, device, {"sec": round(elapsed, 2)})
            if bar is not None:
                bar.set_postfix_str(f"D(x) {last['D(x)']:.2f} D(G(z)) {last['D(G(z))']:.2f} "
                                    f"loss_d {last['loss_d']:.3f} loss_g {last['loss_g']:.3f}")
        if bar is not None:
            bar.update(B * ctx.world_size)
        if ctx.is_main and (step % cfg.sample_every == 0 or done):
            _save_pictures(sampler, fixed_z, fixed_y, data, run_dir, step, cfg)
        eval_due = (cfg.eval_every and step % cfg.eval_every == 0) or done
        if cfg.eval_metrics and eval_due and ctx.is_main:
            try:
                results = _evaluate(sampler, data, cfg, device)
            except Exception as e:  # a broken metric must not cost the run: training and checkpoints go on
                log.error(f"evaluation at step {step} failed ({type(e).__name__}: {e}); training goes on; "
                          f"score the checkpoint later with `gankit eval {run_dir}`")
            else:
                rec.write({"step": step, "nimg": nimg, **{f"eval/{k}": v for k, v in results.items()}})
                last.update({f"eval/{k}": v for k, v in results.items()})
        if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or done:
            state = {
                "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict() if G_ema else None,
                "G_spec": G.spec, "D_spec": D.spec, "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "step": step, "nimg": nimg, "batches": drawn, "config": cfg.to_dict(),
                "class_names": list(data.class_names), "rng": _gather_rng(ctx),
            }
            if ctx.is_main:
                checkpoint.save_step(state, run_dir / "checkpoints", step)
            distributed.barrier(ctx)

    if bar is not None:
        bar.close()
    rec.close()
    distributed.shutdown(ctx)
    if ctx.is_main:
        _print_summary(run_dir, cfg, last)
    return run_dir


# ----------------------------------------------------------------------------------------------------------------
# helpers of the loop


def _broadcast_obj(value, ctx: distributed.Context):
    if ctx.world_size == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather_rng(ctx: distributed.Context):
    """Every rank's RNG state, so a resumed multi-process run draws the same noise on every rank."""
    state = checkpoint.rng_state()
    if ctx.world_size == 1:
        return state
    import torch.distributed as dist

    states = [None] * ctx.world_size
    dist.all_gather_object(states, state)
    return states


def _progress(cfg: Config, ctx: distributed.Context, nimg: int, enabled: bool):
    if not (enabled and ctx.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps * cfg.batch_size * ctx.world_size, initial=nimg, unit="img", unit_scale=True,
                desc="train", dynamic_ncols=True, mininterval=1.0, file=sys.stderr)


def _save_pictures(sampler: Sampler, fixed_z, fixed_y, data, run_dir: Path, step: int, cfg: Config) -> None:
    was_training = sampler.G.training
    sampler.G.eval()
    x = sampler.decode(fixed_z, fixed_y)
    sampler.G.train(was_training)
    if data.is_points:
        viz.save_scatter(x, run_dir / "samples" / f"step-{step:07d}.png", data.modes, data.x[:2500],
                         title=f"{cfg.data}, step {step}")
    else:
        nrow = cfg.c_dim if cfg.c_dim and cfg.c_dim <= 16 else None
        viz.save_grid(x, run_dir / "samples" / f"step-{step:07d}.png", nrow)


def _evaluate(sampler: Sampler, data, cfg: Config, device) -> dict:
    was_training = sampler.G.training
    sampler.G.eval()
    try:
        ctx = metrics.EvalContext(sampler, data, cfg.eval_n, seed=cfg.seed, device=str(device))
        return metrics.evaluate(_names(cfg.eval_metrics), ctx)
    finally:
        sampler.G.train(was_training)


def _print_summary(run_dir: Path, cfg: Config, last: dict) -> None:
    grids = sorted((run_dir / "samples").glob("step-*.png"))
    lines = [f"run:         {run_dir}",
             f"samples:     {grids[-1] if grids else '(none)'}",
             f"checkpoint:  {run_dir / 'checkpoints' / checkpoint.LATEST}",
             f"metrics:     {run_dir / 'metrics.jsonl'}  (tensorboard --logdir {run_dir / 'tb'})"]
    evals = {k: v for k, v in last.items() if k.startswith("eval/")}
    if evals:
        lines.append("evaluation:  " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in evals.items()))
    print("\n".join(lines))
