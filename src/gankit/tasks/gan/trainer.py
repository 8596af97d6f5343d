"""The GAN (task gan): G and D trained against each other (Goodfellow et al. 2014), by the survey's recipe.

Per step (step.py): d_steps updates of D, each from a real minibatch and a generated one passed through D as
separate batches, then g_steps updates of G through D; then G's weight average. Around it, gankit's watching: the
sample grid of the fixed noise, the evaluations of eval_metrics, the run summary. The loop itself is session.py's.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gankit import audio, distributed, metrics, registry, run
from gankit.checkpoint import TrainState
from gankit.config import Config
from gankit.data.stream import Draw
from gankit.metrics.evaluation import make_record, write_record
from gankit.models.base import eval_mode
from gankit.sample import Sampler
from gankit.session import Trainer
from gankit.setup import (build_models, device_kind, fixed_inputs, load_data, memory_errors, metric_names, resolve,
                          resolve_device, seed_everything)
from gankit.step import Step, make_optimizers


class GANTrainer(Trainer):
    def __init__(self, cfg: Config):
        self.ctx = ctx = distributed.init(device_kind(cfg))
        self.device = device = resolve_device(cfg.device, ctx)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # shapes are fixed: let cuDNN pick the fastest kernels once
        with memory_errors("setting up"):
            self.data = data = load_data(cfg)
            self.cfg = cfg = resolve(cfg, data, ctx.world_size)
            data.to(device)
            seed_everything(cfg.seed + ctx.rank)  # each rank draws its own noise
            G, D, G_ema = build_models(cfg, data, device)
            opt_g, opt_d = make_optimizers(cfg, G, D)
        self.state = TrainState(G, D, G_ema, opt_g, opt_d, cfg.to_dict(), list(data.class_names))
        self.fixed_z, self.fixed_y = fixed_inputs(cfg, data, G, D, device)
        self.step = Step(cfg, G, D, G_ema, opt_g, opt_d, device, ctx)
        self.draw = Draw(data, cfg.batch_size, cfg.seed, ctx, device, cfg.xflip)  # from memory, or by DataLoaders
        # recordings: G makes waveforms, or spectrograms that D sees real clips as too (G.represent)
        self.audio = registry.MODELS[cfg.model].audio
        self.represent = G.represent if self.audio == "spectrogram" else None
        self.nhwc = cfg.channels_last and not data.is_points and self.audio != "waveform"
        self.evaluates = bool(cfg.eval_metrics)

    def real_batch(self):
        x, y = self.draw(self.state.batches)  # global batch number: the position in the data, checkpointed
        self.state.batches += 1
        if self.represent is not None:
            with torch.no_grad():
                x = self.represent(x)                  # (B, 1, T) -> (B, 1, S, S)
        if self.nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y if self.cfg.c_dim else None)

    def train_step(self, k: int) -> None:
        self.step(self.real_batch, k)  # d_steps updates of D, then g_steps of G (step.py)

    def begin(self, run_dir: Path, writer, rec, resumed: bool) -> None:
        state = self.state
        self.sampler = Sampler(state.G_ema or state.G, self.cfg.prior, self.data.class_names,
                               {"config": self.cfg.to_dict()})
        if self.ctx.is_main and not self.data.is_points and not resumed:  # what the model is shown: reals.png
            if self.audio:
                reals = self.draw.preview(min(self.cfg.grid_n, audio.TB_CLIPS * 2))[:, 0]   # (n, T)
                writer.submit(audio.save_reals, reals, self.cfg.sample_rate, run_dir, rec)
                return
            writer.submit(run.save_reals, self.draw.preview(self.cfg.grid_n), run_dir, rec)

    def pictures(self, run_dir: Path, k: int, writer, rec) -> None:
        x = run.render_samples(self.sampler, self.fixed_z, self.fixed_y)
        if self.audio:  # a spectrogram sheet of the first clips, and the clips in TensorBoard's Audio tab
            n = min(len(x), 4 * audio.SHEET_COLUMNS)
            y = None if self.fixed_y is None else self.fixed_y[:n].cpu()
            writer.submit(audio.save_pictures, audio.waveforms(self.sampler.G, x[:n]), y, self.data.class_names,
                          self.cfg.sample_rate, run_dir, k, rec)
            return
        writer.submit(run.save_pictures, x, self.data, run_dir, k, self.cfg, rec)

    def evaluate(self, run_dir: Path, k: int, writer) -> dict:
        """The run's eval_metrics on the current G, as the record that gankit eval also writes (eval/step-N.json)."""
        cfg = self.cfg
        with eval_mode(self.sampler.G):
            ctx = metrics.EvalContext(self.sampler, self.data.for_metrics(cfg.eval_n), cfg.eval_n, seed=cfg.seed,
                                      device=str(self.device))
            names, t0 = metric_names(cfg.eval_metrics), time.perf_counter()
            results = metrics.evaluate(names, ctx)
            record = make_record(ctx, names, results, time.perf_counter() - t0, run=str(run_dir), step=k,
                                 checkpoint=None, data_name=cfg.data)
        writer.submit(write_record, run_dir / "eval", record)
        return {f"eval/{name}": v for name, v in record["results"].items()}

    def postfix(self, row: dict) -> str:
        return (f"D(x) {row['D(x)']:.2f} D(G(z)) {row['D(G(z))']:.2f} loss_d {row['loss_d']:.3f} "
                f"loss_g {row['loss_g']:.3f}")
