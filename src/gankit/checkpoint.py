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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit.errors import UserError

LATEST = "latest.pt"
FORMAT = 2  # 1: written by train.py itself; 2: TrainState.capture
_STEP_FILE = re.compile(r"step-(\d+)\.pt$")


def to_cpu(obj):
    """A copy of a nest of dicts, lists and tensors with every tensor cloned to the CPU: a snapshot that training
    can go on changing under, for a background writer or a rollback."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


@dataclass
class TrainState:
    """Everything a training run is: G, D, the averaged G, both optimizers, the counters and the RNG states.

    The one owner of a checkpoint's contents: `capture()` makes the dict that is saved (CPU tensors and plain
    values only, so `torch.load(weights_only=True)` reads it), `restore()` puts a saved dict back, and
    `generator_from_state()` is how sampling code rebuilds G from one.
    """
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    config: dict
    class_names: list[str] = field(default_factory=list)
    step: int = 0          # generator updates done
    nimg: int = 0          # real images shown to D, over all processes
    batches: int = 0       # global batches drawn from the data: where training stands in its epochs

    def capture(self, rng) -> dict:
        """A CPU snapshot of the whole state; `rng` is rng_state() (or one per process under torchrun)."""
        return to_cpu({
            "format": FORMAT,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "G_spec": self.G.spec, "D_spec": self.D.spec,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "step": self.step, "nimg": self.nimg, "batches": self.batches,
            "config": self.config, "class_names": list(self.class_names), "rng": rng,
        })

    def restore(self, state: dict, rank: int = 0, rng: bool = True) -> None:
        """Load a captured state into the live models and optimizers (and the RNGs, unless rng=False)."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
        self.step, self.nimg, self.batches = state["step"], state["nimg"], state["batches"]
        if rng:
            saved = state["rng"]
            set_rng_state(saved[rank] if isinstance(saved, list) else saved)


def generator_from_state(state: dict, ema: bool = True) -> nn.Module:
    """G rebuilt from a checkpoint's contents: the averaged weights when the run kept them (and ema is True)."""
    from gankit.models import generator_from_spec

    G = generator_from_spec(state["G_spec"])
    use_ema = ema and state.get("G_ema") is not None
    G.load_state_dict(state["G_ema"] if use_ema else state["G"])
    return G


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
