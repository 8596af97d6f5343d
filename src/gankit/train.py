"""The training loop. `train()` reads top to bottom as the survey's recipe: set-up, then per step one call of
`Step` (D's updates from a real and a generated minibatch, then G's update through D), then the watching: records,
pictures, evaluations, checkpoints. The step lives in step.py, the run folder and its files in run.py, the
checkpoint's contents in checkpoint.py.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from gankit import checkpoint, data as datasets, distributed, metrics, models, run
from gankit.config import Config, dump
from gankit.errors import ConfigError, UserError
from gankit.latent import sample_z
from gankit.sample import Sampler
from gankit.step import Step, make_optimizers

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


def load_data(cfg: Config, part: str = "train") -> datasets.Dataset:
    """The training data, without the `holdout` examples; part="held_out": those examples alone."""
    data = datasets.load(cfg.data, cfg.data_dir, cfg.img_size, cfg.channels, cfg.n_points)
    if not cfg.holdout:
        if part == "held_out":
            raise ConfigError("holdout", "this run held no examples out of training (train with --holdout N)")
        return data
    train_idx, held_idx = datasets.holdout_indices(len(data), cfg.holdout)
    return data.subset(held_idx if part == "held_out" else train_idx)


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




def build_models(cfg: Config, data: datasets.Dataset, device: torch.device):
    """G, D and the averaged G (None without ema_decay) on the device, in NHWC layout when asked."""
    G, D = models.build(cfg, data.shape)
    G.to(device), D.to(device)
    if cfg.channels_last and cfg.model == "dcgan":
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay else None
    return G, D, G_ema


def fixed_inputs(cfg: Config, data: datasets.Dataset, G, D, device):
    """The noise of the sample grids (labels cycle through the classes, one column per class), and virtual batch
    norm's reference batches, set into G and D. Drawn from their own generator, so they do not depend on the
    training RNG."""
    fixed = torch.Generator().manual_seed(cfg.seed)
    n = cfg.eval_n if data.is_points else cfg.grid_n
    fixed_z = sample_z(n, cfg.z_dim, cfg.prior, fixed).to(device)
    fixed_y = (torch.arange(n) % cfg.c_dim).to(device) if cfg.c_dim else None
    ref_idx = torch.randperm(len(data), generator=fixed)[: cfg.vbn_ref_size].to(device)
    ref_y = data.y[ref_idx] if cfg.c_dim else None
    G.set_reference(sample_z(cfg.vbn_ref_size, cfg.z_dim, cfg.prior, fixed).to(device), ref_y)
    D.set_reference(data.batch(ref_idx), ref_y)
    return fixed_z, fixed_y


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# the loop


def train(cfg: Config, resume: Path | None = None, progress: bool = True) -> Path:
    """Train G and D as `cfg` says; returns the run folder. With `resume`, continue that run exactly."""
    if cfg.task != "gan":  # the applications (gankit/apps/) have loops of their own, built from the same parts
        from gankit import apps

        return apps.train(cfg, resume, progress)
    # ---- set-up: data, models, optimizers, the state a checkpoint holds -----------------------------------------
    ctx = distributed.init("cuda" if cfg.device.startswith("cuda") or
                           (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device, ctx)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # shapes are fixed: let cuDNN pick the fastest kernels once
    data = load_data(cfg)
    cfg = resolve(cfg, data, ctx.world_size)
    data.to(device)
    seed_everything(cfg.seed + ctx.rank)  # each rank draws its own noise
    G, D, G_ema = build_models(cfg, data, device)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    state = checkpoint.TrainState(G, D, G_ema, opt_g, opt_d, cfg.to_dict(), list(data.class_names))
    fixed_z, fixed_y = fixed_inputs(cfg, data, G, D, device)
    if resume:
        state.restore(checkpoint.load(checkpoint.find(resume), map_location=device), ctx.rank)
        if state.step >= cfg.steps:
            raise ConfigError("steps", f"the run is already at step {state.step}; pass a larger --steps to "
                                       "continue it")
    else:
        distributed.broadcast_module(G, ctx), distributed.broadcast_module(D, ctx)
        if G_ema is not None:
            G_ema.load_state_dict(G.state_dict())
    train_step = Step(cfg, G, D, G_ema, opt_g, opt_d, device, ctx)
    batches = Batches(len(data), cfg.batch_size, cfg.seed, ctx, device)
    to_layout = (lambda x: x.contiguous(memory_format=torch.channels_last)) if (
        cfg.channels_last and not data.is_points) else (lambda x: x)

    def real_batch():
        idx = batches(state.batches)
        state.batches += 1
        return to_layout(data.batch(idx)), (data.y[idx] if cfg.c_dim else None)

    # ---- the run folder: made only now that everything above has worked -------------------------------------
    run_dir = Path(resume) if resume else (run.new_run_dir(cfg) if ctx.is_main else None)
    run_dir = Path(_broadcast_obj(str(run_dir), ctx))
    if ctx.is_main:
        (run_dir / "config.yaml").write_text(dump(cfg))
    rec = run.Recorder(run_dir, ctx, state.step)
    if resume:
        rec.write({"step": state.step, "nimg": state.nimg, "event": "resume"})
    writer = run.BackgroundWriter()
    sampler = Sampler(G_ema or G, cfg.prior, data.class_names, {"config": cfg.to_dict()})
    bar = run.progress_bar(cfg, ctx, state.step, progress)

    t_start, first, last = time.time(), state.step, {}
    while state.step < cfg.steps:
        train_step(real_batch, state.step)  # d_steps updates of D, then g_steps of G (step.py)
        state.step += 1
        state.nimg += cfg.batch_size * ctx.world_size
        if bar is not None:
            bar.update(1)
        if state.step == first + 1 and train_step.compile_seconds is not None and ctx.is_main:
            log.info(f"compile: the first step took {train_step.compile_seconds:.1f} s, compilation included")

        # ---- watching it: records, pictures, evaluations, checkpoints, off the step's hot path -----------------
        done = state.step == cfg.steps
        due_log = state.step % cfg.log_every == 0 or done
        due_pictures = ctx.is_main and (state.step % cfg.sample_every == 0 or done)
        due_eval = bool(cfg.eval_metrics) and ctx.is_main and (
            (cfg.eval_every and state.step % cfg.eval_every == 0) or done)
        due_ckpt = (cfg.ckpt_every and state.step % cfg.ckpt_every == 0) or done
        if not (due_log or due_pictures or due_eval or due_ckpt):
            continue
        if train_step.tally.nonfinite_updates():  # the one host synchronisation of a watched step
            raise UserError(f"training diverged before step {state.step}: non-finite losses or gradients (those "
                            f"updates were skipped); the last checkpoint is in {run_dir / 'checkpoints'}; try "
                            "lower g_lr/d_lr")
        if due_log:
            row = {k: distributed.mean(v, ctx, device) for k, v in train_step.tally.read().items()}
            last = {**row, "sec": round(time.time() - t_start, 2)}
            rec.write({"step": state.step, "nimg": state.nimg, **last})
            if bar is not None:
                bar.set_postfix_str(f"D(x) {row['D(x)']:.2f} D(G(z)) {row['D(G(z))']:.2f} "
                                    f"loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f}")
        if due_pictures:
            x = run.render_samples(sampler, fixed_z, fixed_y)
            writer.submit(run.save_pictures, x, data, run_dir, state.step, cfg)
        if due_eval:
            try:
                results = _evaluate(sampler, data, cfg, device)
            except Exception as e:  # a broken metric must not cost the run: training and checkpoints go on
                log.error(f"evaluation at step {state.step} failed ({type(e).__name__}: {e}); training goes on; "
                          f"score the checkpoint later with `gankit eval {run_dir}`")
            else:
                rec.write({"step": state.step, "nimg": state.nimg, **{f"eval/{k}": v for k, v in results.items()}})
                last.update({f"eval/{k}": v for k, v in results.items()})
        if due_ckpt:
            snapshot = state.capture(_gather_rng(ctx))  # CPU copies: training goes on while the file is written
            writer.wait()                              # one checkpoint write at a time, in order
            if ctx.is_main:
                writer.submit(checkpoint.save_step, snapshot, run_dir / "checkpoints", state.step)
            distributed.barrier(ctx)

    writer.close()
    if bar is not None:
        bar.close()
    rec.close()
    distributed.shutdown(ctx)
    if ctx.is_main:
        run.print_summary(run_dir, last)
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


def _evaluate(sampler: Sampler, data, cfg: Config, device) -> dict:
    was_training = sampler.G.training
    sampler.G.eval()
    try:
        ctx = metrics.EvalContext(sampler, data, cfg.eval_n, seed=cfg.seed, device=str(device))
        return metrics.evaluate(_names(cfg.eval_metrics), ctx)
    finally:
        sampler.G.train(was_training)
