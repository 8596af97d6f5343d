"""Checkpoints: the full training state, written atomically, read with weights_only=True.

A checkpoint holds G, D, G_ema, both optimizers, the step, images seen, batches drawn, every RNG state and the
config, which is what an exact resume needs. Only tensors and plain Python values go in, so `torch.load` never has
to unpickle code.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from gankit.errors import UserError

LATEST = "latest.pt"
_STEP_FILE = re.compile(r"step-(\d+)\.pt$")


def save(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over `path`.

    os.replace is atomic on POSIX and Windows, so a crash leaves either the old file or the new one, never half.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_step(state: dict, folder: Path, step: int) -> Path:
    """checkpoints/step-0001000.pt, then latest.pt pointing at the same bytes (a hard link where the file system
    allows, a copy otherwise), each replaced atomically."""
    folder = Path(folder)
    path = folder / f"step-{step:07d}.pt"
    save(state, path)
    tmp = folder / f".{LATEST}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, folder / LATEST)
    return path


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint: {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated, foreign or corrupt file: torch raises several error types
        raise UserError(f"checkpoint: cannot read {path} ({type(e).__name__}); is it a gankit checkpoint?") from None
    if not isinstance(state, dict) or "G" not in state or "config" not in state:
        raise UserError(f"checkpoint: {path} is not a gankit checkpoint (no generator or config in it)")
    return state


def find(run_or_file: str | Path, step: int | None = None) -> Path:
    """A checkpoint file from a run folder (its latest, or the one of `step`) or a file path."""
    p = Path(run_or_file)
    if p.is_file():
        return p
    if not p.is_dir():
        raise UserError(f"checkpoint: {p} is neither a run folder nor a checkpoint file")
    folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if step is not None:
        f = folder / f"step-{step:07d}.pt"
        if not f.is_file():
            have = ", ".join(str(s) for s in steps_available(folder)) or "none"
            raise UserError(f"checkpoint: no checkpoint of step {step} in {folder}; steps saved: {have}")
        return f
    if not (folder / LATEST).is_file():
        raise UserError(f"checkpoint: no {LATEST} in {folder}; was the run trained to its first checkpoint?")
    return folder / LATEST


def steps_available(folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for f in Path(folder).glob("step-*.pt") if (m := _STEP_FILE.search(f.name)))


def rng_state() -> dict:
    """Every RNG that training draws from: Python's, NumPy's, torch's CPU and CUDA generators."""
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
