"""A run's folder and what is written into it: naming, the resume policy, the metric records (metrics.jsonl and
TensorBoard), sample pictures, the final summary, and a background writer that keeps file writes off the training
step.

    runs/<name>/config.yaml  samples/step-NNNNNNN.png  checkpoints/step-NNNNNNN.pt + latest.pt  metrics.jsonl  tb/
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from gankit import checkpoint, distributed, viz
from gankit.config import RESUMABLE_FIELDS, Config
from gankit.errors import ConfigError, UserError


def default_name(cfg: Config) -> str:
    data = Path(cfg.data[len("folder:"):]).name if cfg.data.startswith("folder:") else cfg.data
    kind = cfg.model if cfg.task == "gan" else cfg.task  # the applications' runs: ssl-mnist, sr-mnist
    return f"{kind}-{'cond-' if cfg.cond != 'none' else ''}{data}"


def numbered(root: Path, stem: str) -> Path:
    """root/stem, or root/stem-2, root/stem-3, ...: the first that does not exist."""
    path, i = root / stem, 2
    while path.exists():
        path, i = root / f"{stem}-{i}", i + 1
    return path


def new_run_dir(cfg: Config) -> Path:
    """runs/<name>: an explicit name that exists is an error; a default name is numbered until free."""
    root = Path(cfg.out)
    if cfg.name:
        path = root / cfg.name
        if path.exists():
            raise UserError(f"run folder {path} exists; continue it with --resume {path} or choose another --name")
    else:
        path = numbered(root, default_name(cfg))
    (path / "samples").mkdir(parents=True)
    (path / "checkpoints").mkdir()
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


class Recorder:
    """Rows of numbers, written to metrics.jsonl and TensorBoard on the main process."""

    def __init__(self, run_dir: Path, ctx: distributed.Context, start_step: int):
        self.file = self.writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.file = open(run_dir / "metrics.jsonl", "a")
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)

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


class BackgroundWriter:
    """One worker thread for checkpoint and picture files, so that training goes on while they are written.
    The caller hands over CPU copies (checkpoint.to_cpu); `wait()` re-raises the first error of a write."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gankit-writer")
        self.pending: list[Future] = []

    def submit(self, fn, *args) -> None:
        self.pending.append(self.pool.submit(fn, *args))

    def wait(self) -> None:
        pending, self.pending = self.pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)


def progress_bar(cfg: Config, ctx: distributed.Context, start_step: int, enabled: bool):
    if not (enabled and ctx.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start_step, unit="step", desc="train", dynamic_ncols=True,
                mininterval=1.0, file=sys.stderr)


def render_samples(sampler, fixed_z: torch.Tensor, fixed_y: torch.Tensor | None) -> torch.Tensor:
    """The sampler's G (the averaged G when the run keeps one) on the fixed noise, in eval mode; a CPU tensor."""
    was_training = sampler.G.training
    sampler.G.eval()
    try:
        return sampler.decode(fixed_z, fixed_y)
    finally:
        sampler.G.train(was_training)


def save_pictures(x: torch.Tensor, data, run_dir: Path, step: int, cfg: Config) -> Path:
    path = run_dir / "samples" / f"step-{step:07d}.png"
    if data.is_points:
        viz.save_scatter(x, path, data.modes, data.x[:2500].cpu(), title=f"{cfg.data}, step {step}")
    else:
        nrow = cfg.c_dim if cfg.c_dim and cfg.c_dim <= 16 else None
        viz.save_grid(x, path, nrow)
    return path


def print_summary(run_dir: Path, last: dict) -> None:
    grids = sorted((run_dir / "samples").glob("step-*.png"))
    lines = [f"run:         {run_dir}",
             f"samples:     {grids[-1] if grids else '(none)'}",
             f"checkpoint:  {run_dir / 'checkpoints' / checkpoint.LATEST}",
             f"metrics:     {run_dir / 'metrics.jsonl'}  (tensorboard --logdir {run_dir / 'tb'})"]
    evals = {k: v for k, v in last.items() if k.startswith("eval/")}
    if evals:
        lines.append("evaluation:  " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in evals.items()))
    print("\n".join(lines))
