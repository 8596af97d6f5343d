"""A run's folder and what is written into it: naming, the lock, the resume policy, the metric records
(metrics.jsonl and TensorBoard), sample pictures, the final summary, and a background writer that keeps file writes
off the training step.

    runs/<name>/config.yaml  reals.png  samples/step-NNNNNNN.png  checkpoints/step-NNNNNNN.pt + latest.pt
                metrics.jsonl  tb/  eval/step-NNNNNNN.json + .md

The folder's life: it is made only once set-up (data, models, optimizers, the checkpoint of a resume) has worked,
and held with an exclusive lock while a process trains in it (`RunFolder`). A run that fails before its first
checkpoint removes its folder; one that cannot (kill -9, power loss) leaves a "failed start": a folder of gankit's
own files with no checkpoint and no process holding it, which `--resume` starts again from step 0 and which a new
run of the same name takes over.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from gankit import checkpoint, config as config_mod, distributed, registry, viz
from gankit.config import RESUMABLE_FIELDS, Config
from gankit.errors import ConfigError, UserError
from gankit.models.base import eval_mode

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second process on one run is not detected there
    fcntl = None

log = logging.getLogger("gankit")
# What gankit writes into a run folder before its first checkpoint: a folder holding only these (and no checkpoint)
# is a failed start. Anything else in it (a user's file) makes it a folder gankit never takes over.
START_FILES = {"config.yaml", "metrics.jsonl", "samples", "checkpoints", "tb", "reals.png", "eval"}
# results.json, .md and sheet.png: what the ssl and sr tasks measure at the end of a run
RUN_FILES = START_FILES | {"report.html", "results.json", "results.md", "sheet.png"}


def default_name(cfg: Config) -> str:
    data = Path(cfg.data[len("folder:"):]).name if cfg.data.startswith("folder:") else cfg.data
    data = re.sub(r"[^\w.+-]+", "_", data).strip("._") or "folder"  # a folder's name may hold anything
    kind = cfg.model if registry.TASKS[cfg.task].named_by_model else cfg.task  # the other tasks': ssl-mnist
    cond = cfg.cond not in ("none", "auto")  # auto: undecided until the data is read (setup.resolve)
    return f"{kind}-{'cond-' if cond else ''}{data}"


def numbered(root: Path, stem: str) -> Path:
    """root/stem, or root/stem-2, root/stem-3, ...: the first that does not exist."""
    path, i = root / stem, 2
    while path.exists():
        path, i = root / f"{stem}-{i}", i + 1
    return path


def find_run(source: str | Path, root: str | Path = "runs") -> Path:
    """What a command was given as a run: a path that exists (a run folder, a checkpoint file, an export folder),
    else the name of a run folder under `root` (`--out` of train, `--runs` of the other commands). A path of several
    parts that does not exist is returned as it is, for the command's own error."""
    path = Path(source).expanduser()
    if path.exists() or len(path.parts) != 1:
        return path
    named = Path(root).expanduser() / path
    if named.is_dir():
        return named
    raise UserError(f"run: no {path} here and no run named {str(source)!r} in {root}/; give a run folder, a "
                    f"checkpoint file, or the name of a run folder under {root}/ (another folder: runs, or train's "
                    "out)")


def has_checkpoint(path: Path) -> bool:
    folder = Path(path) / "checkpoints"
    return folder.is_dir() and (bool(checkpoint.steps_available(folder)) or (folder / checkpoint.LATEST).exists())


def foreign_entries(path: Path, allowed: set[str]) -> list[str]:
    """Entries of a run folder that gankit does not write there (samples/ holds only step-*.png)."""
    foreign = [p.name for p in Path(path).iterdir() if p.name not in allowed]
    samples = Path(path) / "samples"
    if samples.is_dir():
        foreign += [f"samples/{p.name}" for p in samples.iterdir() if not re.fullmatch(r"step-\d+\.png", p.name)]
    return sorted(foreign)


def is_failed_start(path: Path) -> bool:
    """A folder that a run made and left before its first checkpoint (killed, or out of power)."""
    path = Path(path)
    return (path.is_dir() and not path.is_symlink() and not has_checkpoint(path)
            and not foreign_entries(path, START_FILES))


# The descriptors of the run folders this process holds locked. A forked child (a DataLoader worker) gets a copy of
# each, and a copy shares the flock: after kill -9 of the trainer an orphaned worker (it looks for its parent every
# 5 s) kept the run locked, and an immediate --resume was refused. So a forked child closes its copies first thing
# (os.register_at_fork runs before any other code of the child); the parent keeps its lock, which flock releases only
# with the last descriptor. Why this way: it covers every fork (the batches' workers, the metrics' and decoding
# DataLoaders, a user's own), where a worker_init_fn covers only the DataLoaders that pass it, once started; a POSIX
# record lock (F_SETLK, not inherited) needs a lock file opened for writing in the folder, an entry every folder
# policy must know and that a refused resume of an older run would leave behind, and any close() of that file by the
# process drops it; PR_SET_PDEATHSIG is Linux-only and fires when the forking thread ends; a spawn or forkserver
# context would change how every DataLoader starts (slower, its dataset pickled). Exec'd programs never get the lock:
# os.open's descriptors are close-on-exec.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class RunFolder:
    """A run folder held by this process.

    The lock is flock() on the folder itself: the kernel releases it when the process ends, however it ends, so a
    lock never outlives its process and no stale lock file is ever left to clean up. The process's forked children
    (DataLoader workers) do not hold it (`_close_held_in_child`), so it ends with the process, not with its last
    orphaned worker.
    """

    def __init__(self, path: Path, fd: int | None, fresh: bool):
        self.path, self.fd, self.fresh = Path(path), fd, fresh

    @staticmethod
    def _lock(path: Path) -> int | None:
        if fcntl is None:
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"run folder {path} is in use by another gankit process; wait for it to end or "
                            "choose another --name") from None
        _HELD.add(fd)
        return fd

    @classmethod
    def existing(cls, path: Path) -> "RunFolder":
        """Hold an existing run (for --resume): takes the lock, writes nothing."""
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"resume: {path} is not a folder")
        return cls(path, cls._lock(path), fresh=False)

    @classmethod
    def create(cls, cfg: Config, force: bool = False) -> "RunFolder":
        """runs/<name>, locked. An explicit name that holds a run is an error (or, with force, the run is
        replaced when the folder holds only gankit's files); a failed start is taken over; a default name is
        numbered until free."""
        root = Path(cfg.out)
        if root.exists() and not root.is_dir():
            raise ConfigError("out", f"{root} is a file, not a folder")
        root.mkdir(parents=True, exist_ok=True)
        if cfg.name:
            folder = cls._claim(root / cfg.name, force, explicit=True)
            if folder is None:
                raise UserError(f"run folder {root / cfg.name} exists; continue it with --resume {root / cfg.name}, "
                                "choose another --name, or pass --force to replace it")
            return folder
        stem, i = default_name(cfg), 1
        while True:
            folder = cls._claim(root / (stem if i == 1 else f"{stem}-{i}"), False, explicit=False)
            if folder is not None:
                return folder
            i += 1

    @classmethod
    def _claim(cls, path: Path, force: bool, explicit: bool) -> "RunFolder | None":
        """This folder made (or taken over) and locked, or None when it is taken."""
        try:
            path.mkdir()
        except FileExistsError:
            pass
        else:
            folder = cls(path, cls._lock(path), fresh=True)
            folder._layout()
            return folder
        if not path.is_dir() or path.is_symlink():
            if explicit:
                raise UserError(f"run folder {path} exists and is not a folder; choose another --name")
            return None
        try:
            fd = cls._lock(path)
        except UserError:
            if explicit:
                raise
            return None
        folder = cls(path, fd, fresh=True)
        if is_failed_start(path):
            log.info(f"run folder {path}: taking over a failed start (no checkpoint, no process holding it)")
        elif explicit and force:
            foreign = foreign_entries(path, RUN_FILES)
            if foreign:
                folder.close()
                raise UserError(f"run folder {path} holds files gankit did not write ({', '.join(foreign[:3])}); "
                                "--force replaces only gankit's own run folders; choose another --name")
            log.warning(f"run folder {path}: replacing the run in it (--force)")
        else:
            folder.close()
            return None
        folder.clear()
        folder._layout()
        return folder

    def _layout(self) -> None:
        (self.path / "samples").mkdir(exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)

    def clear(self) -> None:
        """Remove what gankit wrote into the folder (never anything else: callers have checked the entries)."""
        for name in RUN_FILES:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    def restart(self) -> None:
        """--resume of a failed start: its records and pictures are dropped, config.yaml stays until rewritten."""
        for name in ("metrics.jsonl", "tb", "samples", "eval"):
            p = self.path / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        self._layout()

    def abandon(self) -> None:
        """After a failure: a run made here that wrote no checkpoint leaves no folder behind."""
        if self.fresh and not has_checkpoint(self.path) and not foreign_entries(self.path, START_FILES):
            shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        if self.fd is not None:
            _HELD.discard(self.fd)
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None


def resume_config(run_dir: Path, overrides: dict) -> Config:
    """The saved config of a run, with only the fields that may change on resume overridden."""
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"resume: {run_dir} is not a run folder (no config.yaml)")
    try:
        saved = config_mod.read_yaml(str(run_dir / "config.yaml"))
    except ConfigError as e:
        raise UserError(f"resume: {run_dir / 'config.yaml'}: {e}") from None
    for key, value in overrides.items():
        before = saved.get(key, config_mod.FIELDS[key].default)  # an older config.yaml may lack the field
        if key not in RESUMABLE_FIELDS and config_mod.coerce(key, value) != config_mod.coerce(key, before):
            raise ConfigError(key, f"cannot change on resume (saved: {before!r}); only "
                                   f"{', '.join(RESUMABLE_FIELDS)} may change")
    try:
        return config_mod.load(None, {**saved, **{k: v for k, v in overrides.items() if k in RESUMABLE_FIELDS}})
    except ConfigError as e:
        if e.field in overrides:
            raise
        raise UserError(f"resume: {run_dir / 'config.yaml'} holds a bad value: {e}") from None


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
            if k not in ("step", "nimg") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, row["step"])

    def image(self, tag: str, png: Path, step: int) -> None:
        """A picture already saved as PNG (a sample grid, a scatter plot, the real images) into TensorBoard's
        Images tab. Called from the background writer; SummaryWriter queues events, so threads may share it."""
        if self.writer is None:
            return
        import numpy as np
        from PIL import Image

        with Image.open(png) as im:
            self.writer.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.writer.close()


def _one_thread() -> None:
    """The writer's own torch work (checksums, finiteness checks, PNG grids) on one thread. Left at the default, its
    first parallel region makes a second OpenMP team beside the training thread's, and the two teams' spinning
    threads share the cores from then on: on 2 cores every training step after the first checkpoint took twice as
    long (the digits preset: 9.8 ms a step before it, 19.4 ms after). OpenMP's thread count is per calling thread,
    so the training thread keeps its own."""
    torch.set_num_threads(1)


class BackgroundWriter:
    """One worker thread for checkpoint and picture files, so that training goes on while they are written.
    The caller hands over CPU copies (checkpoint.to_cpu); `wait()` re-raises the first error of a write."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gankit-writer", initializer=_one_thread)
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


def record_evaluation(run_dir: Path, record: dict) -> None:
    """An evaluation made after training (`gankit eval`, gankit.evaluate) joins the run's records: one row of
    eval/* values in metrics.jsonl and TensorBoard, as an evaluation during training writes."""
    rec = Recorder(Path(run_dir), distributed.Context(), 0)
    try:
        rec.write({"step": record["step"] or 0, "event": "eval",
                   **{f"eval/{k}": v for k, v in record["results"].items()}})
    finally:
        rec.close()


class LineProgress:
    """The progress bar's calls, as one plain line per record (every log_every steps) for logs and batch jobs:
    `--no-progress`, or train(progress=False)."""

    def __init__(self, total: int, start: int):
        self.total, self.step, self.start, self.t0 = total, start, start, time.time()

    def update(self, n: int = 1) -> None:
        self.step += n

    @property
    def n(self) -> int:  # tqdm's name for the position, set back after a rollback
        return self.step

    @n.setter
    def n(self, value: int) -> None:
        self.step = value

    def refresh(self) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        elapsed = time.time() - self.t0
        rate = (self.step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = _clock((self.total - self.step) / rate) if rate > 0 else "?"
        print(f"train: step {self.step}/{self.total} ({100 * self.step // self.total}%), {rate:.2f} steps/s, "
              f"elapsed {_clock(elapsed)}, ETA {eta} | {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def progress_bar(cfg: Config, ctx: distributed.Context, start_step: int, enabled: bool):
    """A tqdm bar in steps with ETA on the main process; with enabled=False, a LineProgress."""
    if not ctx.is_main:
        return None
    if not enabled:
        return LineProgress(cfg.steps, start_step)
    import tqdm.auto  # a widget in a Jupyter notebook, the text bar elsewhere

    return tqdm.auto.tqdm(total=cfg.steps, initial=start_step, unit="step", desc="train", dynamic_ncols=True,
                          mininterval=1.0, file=sys.stderr)


def render_samples(sampler, fixed_z: torch.Tensor, fixed_y: torch.Tensor | None) -> torch.Tensor:
    """The sampler's G (the averaged G when the run keeps one) on the fixed noise, in eval mode; a CPU tensor."""
    with eval_mode(sampler.G):
        return sampler.decode(fixed_z, fixed_y)


def save_pictures(x: torch.Tensor, data, run_dir: Path, step: int, cfg: Config, rec: Recorder | None = None) -> Path:
    """samples/step-NNNNNNN.png (and the same picture in TensorBoard when `rec` is given)."""
    path = run_dir / "samples" / f"step-{step:07d}.png"
    if data.is_points:
        viz.save_scatter(x, path, data.modes, data.x[:2500].cpu(), title=f"{cfg.data}, step {step}")
    else:
        nrow = cfg.c_dim if cfg.c_dim and cfg.c_dim <= 16 else None
        viz.save_grid(x, path, nrow)
    if rec is not None:
        rec.image("samples", path, step)
    return path


def save_reals(x: torch.Tensor, run_dir: Path, rec: Recorder | None = None) -> Path:
    """reals.png: real training images as the model is shown them (resized, mirrored), and in TensorBoard."""
    path = run_dir / "reals.png"
    if path.exists():
        raise UserError(f"run: {path} exists; a new run folder should not hold one")
    viz.save_grid(x, path)
    if rec is not None:
        rec.image("reals", path, 0)
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
