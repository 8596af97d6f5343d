"""The training loop. `train()` reads top to bottom as the survey's recipe: set-up, then per step one call of
`Step` (D's updates from a real and a generated minibatch, then G's update through D), then the watching: records,
pictures, evaluations, checkpoints. The step lives in step.py, the run folder and its files in run.py, the
checkpoint's contents in checkpoint.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import random
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from gankit import checkpoint, data as datasets, distributed, metrics, models, run
from gankit.config import RESUMABLE_FIELDS, Config, dump
from gankit.data.stream import Batches, Draw  # noqa: F401  (Batches: gankit.bench draws with it too)
from gankit.errors import ConfigError, UserError
from gankit.guard import CollapseAlarm, Divergence
from gankit.latent import sample_z
from gankit.metrics.evaluation import make_record as make_eval_record, write_record as write_eval_record
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
        if int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError("device", f"{name} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def load_parts(cfg: Config):
    """The data set, read once: (all of it, the training part without the `holdout` examples, those examples or
    None when the run held none out)."""
    data = datasets.from_config(cfg)
    if not cfg.holdout:
        return data, data, None
    if not isinstance(data, datasets.Dataset):
        raise ConfigError("holdout", "holds examples out of a data set in memory; use it with stream off")
    train_idx, held_idx = datasets.holdout_indices(len(data), cfg.holdout)
    return data, data.subset(train_idx), data.subset(held_idx)


def load_data(cfg: Config, part: str = "train") -> datasets.Dataset:
    """The training data, without the `holdout` examples; part="held_out": those examples alone."""
    _, train, held = load_parts(cfg)
    return held_out(held) if part == "held_out" else train


def held_out(held: datasets.Dataset | None) -> datasets.Dataset:
    """load_parts' held-out part, or the error that says the run held nothing out."""
    if held is None:
        raise ConfigError("holdout", "this run held no examples out of training (train with --holdout N)")
    return held


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
                            "eval_metrics", data.name)
    return dataclasses.replace(cfg, **changes)


def _names(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


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
    np.random.seed(seed % 2**32)  # seed + rank may pass NumPy's 32-bit limit under torchrun
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# the loop


def train(cfg: Config, resume: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """Train G and D as `cfg` says; returns the run folder. With `resume`, continue that run exactly; with `force`,
    an existing run folder of the same --name is replaced."""
    if cfg.task != "gan":  # the applications (gankit/apps/) have loops of their own, built from the same parts
        from gankit import apps

        return apps.train(cfg, resume, progress, force)
    # ---- set-up: data, models, optimizers, the state a checkpoint holds -----------------------------------------
    ctx = distributed.init("cuda" if cfg.device.startswith("cuda") or
                           (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = resolve_device(cfg.device, ctx)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # shapes are fixed: let cuDNN pick the fastest kernels once
    with _memory_errors("setting up"):
        data = load_data(cfg)
        cfg = resolve(cfg, data, ctx.world_size)
        data.to(device)
        seed_everything(cfg.seed + ctx.rank)  # each rank draws its own noise
        G, D, G_ema = build_models(cfg, data, device)
        opt_g, opt_d = make_optimizers(cfg, G, D)
    state = checkpoint.TrainState(G, D, G_ema, opt_g, opt_d, cfg.to_dict(), list(data.class_names))
    fixed_z, fixed_y = fixed_inputs(cfg, data, G, D, device)

    # ---- the run folder: held (locked) once everything above has worked; a resume is checked before any write --
    folder = None
    if resume:
        folder = run.RunFolder.existing(Path(resume)) if ctx.is_main else None
        try:
            _restore(state, cfg, Path(resume), device, ctx)
        except BaseException:
            if folder is not None:
                folder.close()
            raise
    else:
        distributed.broadcast_module(G, ctx), distributed.broadcast_module(D, ctx)
        if G_ema is not None:
            G_ema.load_state_dict(G.state_dict())
        folder = run.RunFolder.create(cfg, force) if ctx.is_main else None
    run_dir = Path(_broadcast_obj(str(folder.path) if folder else None, ctx))
    try:
        return _loop(cfg, state, data, device, ctx, run_dir, fixed_z, fixed_y, progress, resumed=resume is not None)
    except BaseException:
        if folder is not None:
            folder.abandon()  # a run made here that never wrote a checkpoint leaves no folder behind
        raise
    finally:
        if folder is not None:
            folder.close()


def _restore(state: checkpoint.TrainState, cfg: Config, run_dir: Path, device, ctx) -> None:
    """Put the run's latest checkpoint into `state`, checking that the run can go on as `cfg` says. A run with no
    checkpoint (a failed start) starts again from step 0."""
    if not run.has_checkpoint(run_dir):
        log.info(f"resume: {run_dir} has no checkpoint yet (its first start ended early); training from step 0")
        distributed.broadcast_module(state.G, ctx), distributed.broadcast_module(state.D, ctx)
        if state.G_ema is not None:
            state.G_ema.load_state_dict(state.G.state_dict())
        return
    path = checkpoint.find(run_dir)
    saved = checkpoint.load(path, map_location=device)
    now = cfg.to_dict()
    changed = [k for k, v in saved["config"].items()
               if k in now and k not in RESUMABLE_FIELDS and now[k] != v]
    if changed:
        k = changed[0]
        raise UserError(f"resume: config.yaml of {run_dir} differs from its checkpoint in {', '.join(changed)} "
                        f"({k}: {now[k]!r} in config.yaml, {saved['config'][k]!r} in {path.name}); only "
                        f"{', '.join(RESUMABLE_FIELDS)} may change on resume")
    state.restore(saved, ctx.rank)
    if state.step >= cfg.steps:
        raise ConfigError("steps", f"the run is already at step {state.step}; pass a larger --steps to continue it")
    if state.lr_factor != 1.0 and (saved["config"].get("g_lr"), saved["config"].get("d_lr")) != (cfg.g_lr, cfg.d_lr):
        log.info(f"resume: new learning rates g_lr {cfg.g_lr:g}, d_lr {cfg.d_lr:g} replace the ones the divergence "
                 f"guard had lowered (x{state.lr_factor:g})")
        state.lr_factor = 1.0


def _loop(cfg: Config, state: checkpoint.TrainState, data, device, ctx, run_dir: Path, fixed_z, fixed_y,
          progress: bool, resumed: bool) -> Path:
    G, D, G_ema = state.G, state.D, state.G_ema
    train_step = Step(cfg, G, D, G_ema, state.opt_g, state.opt_d, device, ctx)
    draw = Draw(data, cfg.batch_size, cfg.seed, ctx, device, cfg.xflip)  # from memory, or decoded by DataLoaders
    to_layout = (lambda x: x.contiguous(memory_format=torch.channels_last)) if (
        cfg.channels_last and not data.is_points) else (lambda x: x)

    def real_batch():
        x, y = draw(state.batches)  # global batch number state.batches: the position in the data, checkpointed
        state.batches += 1
        return to_layout(x), (y if cfg.c_dim else None)

    cfg = dataclasses.replace(cfg, name=run_dir.name)  # the folder's real name, also when it was numbered
    state.config = cfg.to_dict()
    if ctx.is_main:
        if resumed and state.step == 0:
            run.RunFolder(run_dir, None, False).restart()
        _write_text(run_dir / "config.yaml", dump(cfg))
    rec = run.Recorder(run_dir, ctx, state.step)
    if resumed:
        rec.write({"step": state.step, "nimg": state.nimg, "event": "resume"})
    writer = run.BackgroundWriter()
    if ctx.is_main and not data.is_points and not resumed:  # what the model is shown: reals.png
        writer.submit(run.save_reals, draw.preview(cfg.grid_n), run_dir, rec)
    sampler = Sampler(G_ema or G, cfg.prior, data.class_names, {"config": cfg.to_dict()})
    bar = run.progress_bar(cfg, ctx, state.step, progress)
    guard, alarm = Divergence(cfg, state), CollapseAlarm(cfg.collapse_steps, cfg.loss)
    guard.keep(state.capture(_gather_rng(ctx)))  # the first good state: where this process started
    ckpt_dir = run_dir / "checkpoints"
    last_ckpt = ckpt_dir / f"step-{state.step:07d}.pt" if resumed and state.step else None
    train_step.lr_factor = state.lr_factor

    t_start, first, last, last_record = time.time(), state.step, {}, state.step
    try:
        while state.step < cfg.steps:
            with _memory_errors(f"training step {state.step + 1}"):
                train_step(real_batch, state.step)  # d_steps updates of D, then g_steps of G (step.py)
            state.step += 1
            state.nimg += cfg.batch_size * ctx.world_size
            if bar is not None:
                bar.update(1)
            if state.step == first + 1 and train_step.compile_seconds is not None and ctx.is_main:
                log.info(f"compile: the first step took {train_step.compile_seconds:.1f} s, compilation included")

            # ---- watching it: records, pictures, evaluations, checkpoints, off the step's hot path ---------------
            done = state.step == cfg.steps
            due_log = state.step % cfg.log_every == 0 or done
            due_pictures = state.step % cfg.sample_every == 0 or done
            due_eval = bool(cfg.eval_metrics) and ((cfg.eval_every and state.step % cfg.eval_every == 0) or done)
            due_ckpt = (cfg.ckpt_every and state.step % cfg.ckpt_every == 0) or done
            if not (due_log or due_pictures or due_eval or due_ckpt):
                continue
            # the guard, before anything is recorded, drawn or saved: one host synchronisation of a watched step
            skipped = int(distributed.mean(float(train_step.tally.nonfinite_updates()), ctx, device) * ctx.world_size)
            if not distributed.all_true(guard.is_clean(skipped), ctx, device):
                line = guard.rollback(skipped, str(last_ckpt) if last_ckpt else None)
                log.warning(line)
                train_step.tally.reset()
                train_step.lr_factor = state.lr_factor
                rec.write({"step": state.step, "nimg": state.nimg, "event": "rollback", "rollbacks": state.rollbacks,
                           "lr_factor": state.lr_factor})
                if bar is not None:
                    bar.n = state.step
                    bar.refresh()
                last_record = state.step
                continue
            if due_log:
                row = {k: distributed.mean(v, ctx, device) for k, v in train_step.tally.read().items()}
                last = {**row, "sec": round(time.time() - t_start, 2)}
                rec.write({"step": state.step, "nimg": state.nimg, **last})
                warning = alarm.update(state.step, row, state.step - last_record)
                last_record = state.step
                if warning and ctx.is_main:
                    log.warning(warning)
                    rec.write({"step": state.step, "nimg": state.nimg, "event": "d_collapse"})
                if bar is not None:
                    bar.set_postfix_str(("D WINS (see log) · " if alarm.active else "") +
                                        f"D(x) {row['D(x)']:.2f} D(G(z)) {row['D(G(z))']:.2f} "
                                        f"loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f}")
            if due_pictures and ctx.is_main:
                x = run.render_samples(sampler, fixed_z, fixed_y)
                writer.submit(run.save_pictures, x, data, run_dir, state.step, cfg, rec)
            if due_eval and ctx.is_main:
                try:
                    record = _evaluate(sampler, data, cfg, device, run_dir, state.step)
                except Exception as e:  # a broken metric must not cost the run: training and checkpoints go on
                    log.error(f"evaluation at step {state.step} failed ({type(e).__name__}: {e}); training goes on; "
                              f"score the checkpoint later with `gankit eval {run_dir}`")
                else:
                    evals = {f"eval/{k}": v for k, v in record["results"].items()}
                    rec.write({"step": state.step, "nimg": state.nimg, **evals})
                    last.update(evals)
                    writer.submit(write_eval_record, run_dir / "eval", record)  # eval/step-NNNNNNN.json
            if due_log or due_ckpt:
                snapshot = state.capture(_gather_rng(ctx))  # CPU copies: training goes on while a file is written
                guard.keep(snapshot)                        # ... and the state a rollback returns to
                if due_ckpt:
                    writer.wait()                           # one checkpoint write at a time, in order
                    if ctx.is_main:
                        writer.submit(checkpoint.save_step, snapshot, ckpt_dir, state.step)
                        last_ckpt = ckpt_dir / f"step-{state.step:07d}.pt"
                    distributed.barrier(ctx)
    except KeyboardInterrupt:
        _save_on_interrupt(guard, writer, ckpt_dir, last_ckpt, ctx)
        raise
    finally:
        try:
            writer.close()
        finally:
            if bar is not None:
                bar.close()
            rec.close()
    distributed.shutdown(ctx)
    if ctx.is_main:
        run.print_summary(run_dir, last)
    return run_dir


def _save_on_interrupt(guard: Divergence, writer, ckpt_dir: Path, last_ckpt: Path | None, ctx) -> None:
    """Ctrl-C: the last good state (taken at the last clean record, consistent, with its RNG states) becomes a
    checkpoint when it is newer than the last one, so `--resume` goes on exactly from there."""
    if ctx.world_size > 1 or not ctx.is_main or guard.good is None or guard.good_step <= 0:
        return
    last_step = int(last_ckpt.stem.split("-")[-1]) if last_ckpt else -1   # step-NNNNNNN.pt
    if guard.good_step <= last_step:
        return
    try:
        writer.wait()
        path = checkpoint.save_step(guard.good, ckpt_dir, guard.good_step)
        log.warning(f"interrupted: saved the last clean state (step {guard.good_step}) to {path}; continue with "
                    f"--resume {ckpt_dir.parent}")
    except Exception as e:  # noqa: BLE001: the interrupt is what the user asked for; report and go on with it
        log.error(f"interrupted: could not save the last clean state ({type(e).__name__}: {e})")


def _write_text(path: Path, text: str) -> None:
    """Write a small text file atomically: a temporary file, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _memory_errors(doing: str):
    """A failed allocation becomes one line that says what to shrink."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise UserError(f"out of memory while {doing} ({type(e).__name__}); lower batch_size, g_width/d_width, "
                        "img_size or z_dim") from None
    except RuntimeError as e:
        text = str(e)
        if "allocate" in text or "out of memory" in text:
            raise UserError(f"out of memory while {doing} ({text.splitlines()[0][:120]}); lower batch_size, "
                            "g_width/d_width, img_size or z_dim") from None
        raise


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


def _evaluate(sampler: Sampler, data, cfg: Config, device, run_dir: Path, step: int) -> dict:
    """The run's eval_metrics on the current G, as the record that gankit eval also writes."""
    was_training = sampler.G.training
    sampler.G.eval()
    try:
        ctx = metrics.EvalContext(sampler, data.for_metrics(cfg.eval_n), cfg.eval_n, seed=cfg.seed,
                                  device=str(device))
        names, t0 = _names(cfg.eval_metrics), time.perf_counter()
        results = metrics.evaluate(names, ctx)
        return make_eval_record(ctx, names, results, time.perf_counter() - t0, run=str(run_dir), step=step,
                                checkpoint=None, data_name=cfg.data)
    finally:
        sampler.G.train(was_training)


# ----------------------------------------------------------------------------------------------------------------
# `gankit.train(config)` is the Python API (api.py). Importing this module binds the package's attribute `train` to
# the module itself, so the module is made callable and passes the call on: `gankit.train(...)` works whether or not
# the module has been imported (e.g. by the command line) before.


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from gankit.api import train as api_train

        return api_train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
