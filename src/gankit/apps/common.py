"""What the applications' loops share: one process on one device, the run folder, the state a checkpoint holds when D
has an averaged copy, and the watching of a run (records, pictures, checkpoints) that train.py does for the GAN."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gankit import checkpoint, distributed, run
from gankit.config import Config, dump
from gankit.errors import UserError


def single_device(cfg: Config) -> torch.device:
    """The device of a one-process run (the applications do not split batches over torchrun processes)."""
    from gankit.train import resolve_device

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"task {cfg.task} runs in one process; start it with gankit train, not torchrun")
    return resolve_device(cfg.device, distributed.Context())


@dataclass
class AppState(checkpoint.TrainState):
    """TrainState plus an averaged copy of D (the ssl classifier's EMA), captured and restored with the rest."""
    D_ema: nn.Module | None = None

    def capture(self, rng) -> dict:
        state = super().capture(rng)
        state["D_ema"] = checkpoint.to_cpu(self.D_ema.state_dict()) if self.D_ema is not None else None
        return state

    def restore(self, state: dict, rank: int = 0, rng: bool = True) -> None:
        super().restore(state, rank, rng)
        if self.D_ema is not None:
            self.D_ema.load_state_dict(state["D_ema"] if state.get("D_ema") is not None else state["D"])


class Watch:
    """The run folder and what is written into it while a loop runs: config.yaml, metrics.jsonl and TensorBoard,
    pictures and checkpoints (by a background thread), a progress bar. `due(step)` says what is due."""

    def __init__(self, cfg: Config, state: AppState, resume: Path | None, progress: bool, force: bool = False):
        ctx = distributed.Context()
        self.cfg, self.state = cfg, state
        # held (locked) as the GAN's loop holds it: a second process on the same run is refused
        self.folder = run.RunFolder.existing(Path(resume)) if resume else run.RunFolder.create(cfg, force)
        self.dir = self.folder.path
        (self.dir / "config.yaml").write_text(dump(cfg))
        self.rec = run.Recorder(self.dir, ctx, state.step)
        if resume:
            self.rec.write({"step": state.step, "nimg": state.nimg, "event": "resume"})
        self.writer = run.BackgroundWriter()
        self.bar = run.progress_bar(cfg, ctx, state.step, progress)
        self.t_start = time.time()

    def due(self, step: int, every: int) -> bool:
        return step == self.cfg.steps or (every > 0 and step % every == 0)

    def advance(self, step) -> tuple[bool, bool, bool, bool] | None:
        """After one training step: the state's counters and the bar moved on. None when nothing is due, else what
        is due (log, eval, pictures, checkpoint), once the step's tally shows no non-finite update."""
        cfg, state = self.cfg, self.state
        state.step += 1
        state.nimg += cfg.batch_size
        if self.bar is not None:
            self.bar.update(1)
        due = tuple(self.due(state.step, every) for every in (cfg.log_every, cfg.eval_every, cfg.sample_every,
                                                                cfg.ckpt_every))
        if not any(due):
            return None
        if step.tally.nonfinite_updates():
            raise UserError(f"training diverged before step {state.step}: non-finite losses or gradients; the last "
                            f"checkpoint is in {self.dir / 'checkpoints'}; try lower g_lr/d_lr")
        return due

    def record(self, row: dict) -> None:
        self.rec.write({"step": self.state.step, "nimg": self.state.nimg, **row,
                        "sec": round(time.time() - self.t_start, 2)})

    def checkpoint(self) -> None:
        snapshot = self.state.capture(checkpoint.rng_state())   # CPU copies: training goes on while it is written
        self.writer.wait()
        self.writer.submit(checkpoint.save_step, snapshot, self.dir / "checkpoints", self.state.step)

    def close(self) -> None:
        self.writer.close()
        if self.bar is not None:
            self.bar.close()
        self.rec.close()
        self.folder.close()


# ------------------------------------------------------------------------------------------------------------------
# images in and out of `gankit inpaint` and `gankit upscale`


def read_images(source: str | Path, channels: int, size: int | None = None):
    """Images as float (N, C, H, W) in [-1, 1] and their labels (N,) or None.

    FILE.npz: `images` uint8 (N, H, W, C) or (N, H, W), as `gankit sample` writes them, and `labels` if present.
    DIR: every image file under it, sorted by path; top-level sub-folders become labels, as for data: folder:PATH.
    size: resize to size x size; None: the images must share one size.
    """
    import numpy as np

    from gankit.data.images import load_folder, to_stored

    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"images: {path} does not exist")
        try:
            with np.load(path) as f:
                if "images" not in f:
                    raise UserError(f"images: {path} holds no `images` array (it has {', '.join(f.files)})")
                arr, labels = f["images"], (f["labels"] if "labels" in f else None)
        except (OSError, ValueError) as e:
            raise UserError(f"images: cannot read {path} ({e})".splitlines()[0]) from None
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.dtype != np.uint8:
            raise UserError(f"images: {path}: `images` must be uint8 (N, H, W, C), got {arr.dtype} {arr.shape}")
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        x = to_stored(x, size or x.shape[-1], channels)
        y = torch.from_numpy(np.asarray(labels)).long() if labels is not None else None
    elif path.is_dir():
        if size is None:
            size = _common_size(path)
        data = load_folder(str(path), size, channels)
        x, y = data.x, data.y
    else:
        raise UserError(f"images: {path} is neither a .npz file nor a folder of images")
    if y is not None and len(y) != len(x):
        raise UserError(f"images: {path} holds {len(x)} images but {len(y)} labels")
    return x.float().div(127.5).sub(1.0), y


def _common_size(folder: Path) -> int:
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    sizes = set()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS:
            try:
                with Image.open(p) as im:
                    sizes.add(im.size)
            except OSError:
                continue
    if not sizes:
        raise UserError(f"images: no readable images under {folder}")
    if len(sizes) > 1 or len({s for size in sizes for s in size}) > 1:
        raise UserError(f"images: the images under {folder} must be square and of one size; found "
                        f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes))}")
    return next(iter(sizes))[0]


def new_folder(out: str | Path, command: str) -> Path:
    """An output folder that is new or empty: nothing the user already had is overwritten."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{command}: {out} exists and is not an empty folder; choose another --out (nothing is "
                        "overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npz(path: Path, images: torch.Tensor, **arrays) -> Path:
    """images (N, C, H, W) in [-1, 1] -> `images` uint8 (N, H, W, C), as `gankit sample` writes, plus arrays."""
    import numpy as np

    from gankit.viz import to_uint8

    np.savez_compressed(path, images=to_uint8(images),
                        **{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in arrays.items()
                           if v is not None})
    return path
