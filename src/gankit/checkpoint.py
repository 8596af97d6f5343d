"""Checkpoints: the full training state, written atomically, read with weights_only=True.

A checkpoint holds G, D, G_ema, both optimizers, the step, images seen, batches drawn, every RNG state, the config
and the divergence guard's learning-rate factor, which is what an exact resume needs, and a fingerprint of the
training data, so that a resume on data that changed since is refused rather than going on "exactly" on other data.
Only tensors and plain Python values go in, so `torch.load` never has to unpickle code. Each file carries a SHA-256
of its contents ("checksum"), checked on load: a truncated or altered file is refused with its name and the newest
checkpoint that is intact.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit import outputs, registry
# sha256_file lives with the file writes (outputs.py); it stays importable from here for the modules that read it here
from gankit.outputs import sha256_file  # noqa: F401
from gankit.config import ema_initial_share
from gankit.errors import UserError
from gankit.models import discriminator_from_spec, generator_from_spec

LATEST = "latest.pt"
BEST = "best.pt"  # keep_best: the checkpoint of the best evaluation so far, `--checkpoint best`
log = logging.getLogger("gankit")
FORMAT = 3  # 1: written by train.py itself; 2: TrainState.capture; 3: with a checksum and the rollback state
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
    lr_factor: float = 1.0  # the divergence guard's product of rollback_lr_factor over the rollbacks so far
    rollbacks: int = 0     # rollbacks so far (guard.py)
    D_ema: nn.Module | None = None  # an averaged D, when the task keeps one (ssl: the classifier that is scored)
    data: dict | None = None  # the training data's fingerprint (its .fingerprint(), set by the Session)

    def modules(self) -> list:
        """The models and optimizers whose values must stay finite (the divergence guard checks them)."""
        return [m for m in (self.G, self.D, self.G_ema, self.D_ema, self.opt_g, self.opt_d) if m is not None]

    def capture(self, rng) -> dict:
        """A CPU snapshot of the whole state; `rng` is rng_state() (or one per process under torchrun)."""
        return to_cpu({
            "format": FORMAT,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "G_spec": self.G.spec, "D_spec": self.D.spec,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "step": self.step, "nimg": self.nimg, "batches": self.batches,
            "lr_factor": self.lr_factor, "rollbacks": self.rollbacks,
            "config": self.config, "class_names": list(self.class_names), "rng": rng,
            **({"D_ema": self.D_ema.state_dict()} if self.D_ema is not None else {}),
            **({"data": self.data} if self.data is not None else {}),
        })

    def restore(self, state: dict, rank: int = 0, rng: bool = True) -> None:
        """Load a captured state into the live models and optimizers (and the RNGs, unless rng=False). A state that
        does not fit these models (another architecture, an edited config.yaml) is a UserError naming the part, and so
        is a state trained on other data than this state's (`data`), before anything is loaded."""
        change = data_change(state.get("data"), self.data)
        if change:
            raise UserError(f"resume: the training data ({self.config.get('data', '?')}) changed since the checkpoint: "
                            f"{change}; put the data back as it was, or train a new run on it (without --resume)")
        parts = [(self.G, "G"), (self.D, "D"), (self.opt_g, "opt_g"), (self.opt_d, "opt_d")]
        if self.G_ema is not None:
            parts.append((self.G_ema, "G_ema" if state.get("G_ema") is not None else "G"))
        if self.D_ema is not None:
            parts.append((self.D_ema, "D_ema" if state.get("D_ema") is not None else "D"))
        for target, key in parts:
            try:
                target.load_state_dict(state[key])
            except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError) as e:
                detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise UserError(f"checkpoint: its {key} does not fit the models of this config ({detail[:200]}); "
                                "was it made with another architecture, or was config.yaml edited?") from None
        try:
            self.step, self.nimg, self.batches = int(state["step"]), int(state["nimg"]), int(state["batches"])
            self.lr_factor, self.rollbacks = float(state.get("lr_factor", 1.0)), int(state.get("rollbacks", 0))
            if rng:
                saved = state["rng"]
                set_rng_state(saved[rank] if isinstance(saved, list) else saved)
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
            raise UserError(f"checkpoint: its counters or RNG states are damaged ({type(e).__name__})") from None


def data_change(saved: dict | None, now: dict | None) -> str | None:
    """How the data now differs from the data a state was trained on, in words (their fingerprints: Dataset and
    StreamedDataset.fingerprint); None when they match, or when either has none (a checkpoint made before
    fingerprints resumes as it always did). The examples' contents are compared when both were held in memory, else
    the digests of the files they came from (a run resumed with stream changed), else the number of examples."""
    if not isinstance(saved, dict) or not isinstance(now, dict):
        return None
    if saved.get("contents") and now.get("contents"):
        before, after = saved.get("examples"), now.get("examples")
        if before != after:
            return f"{before:,} training examples then, {after:,} now"
        return None if saved["contents"] == now["contents"] else \
            f"still {after:,} training examples, but their contents differ"
    if saved.get("files") and now.get("files"):
        (before, was), (after, now_) = saved["files"], now["files"]
        if before != after:
            return f"{before:,} images then, {after:,} now"
        return None if was == now_ else \
            f"still {after:,} images, but the names, sizes or modification times of their files differ"
    before, after = saved.get("examples"), now.get("examples")
    return None if before == after or before is None else f"{before:,} training examples then, {after:,} now"


@dataclass
class Saved:
    """A checkpoint read back: what `TrainState.capture` wrote, by name, so that no reader indexes the file by its
    keys. `read(run_or_file)` makes one."""
    path: Path
    state: dict

    @property
    def config(self) -> dict:
        return self.state["config"]

    @property
    def task(self) -> str:
        return self.config.get("task", "gan")

    @property
    def step(self) -> int | None:
        return self.state.get("step")

    @property
    def class_names(self) -> list[str]:
        return list(self.state.get("class_names", []))

    @property
    def has_ema(self) -> bool:
        """Whether the run kept an averaged G."""
        return self.state.get("G_ema") is not None

    def require(self, command: str, hint: str = "") -> "Saved":
        """This checkpoint, or the one-line error that `command` (a task's `use` in the registry) was given a run of a
        task it does not serve."""
        task = registry.task(self.task)
        if task is None or task.use != command:
            raise UserError(f"{command}: {self.path} is from a run of task {self.task}; {command} needs a run of task "
                            f"{registry.tasks_with(use=command)}{hint}")
        return self

    def generator(self, ema: bool = True) -> nn.Module:
        """G rebuilt (in eval mode): its averaged weights when the run kept them and ema is True."""
        try:
            G = generator_from_state(self.state, ema).eval()
        except UserError as e:
            raise UserError(f"{e} (in {self.path})") from None
        warning = ema_warning(self.config, self.step or 0, self.path.name) if ema and self.has_ema else None
        if warning:
            log.warning(warning)
        return G

    def discriminator(self, ema: bool = False) -> nn.Module:
        """D rebuilt (in eval mode, no gradients): its averaged weights (the ssl classifier's) when ema is True and the
        run kept them."""
        try:
            D = discriminator_from_spec(self.state["D_spec"])
            use_ema = ema and self.state.get("D_ema") is not None
            D.load_state_dict(self.state["D_ema"] if use_ema else self.state["D"])
        except Exception as e:  # noqa: BLE001: any constructor or loading error of a damaged file is the file's fault
            raise UserError(f"checkpoint: its discriminator cannot be rebuilt ({type(e).__name__}) (in "
                            f"{self.path})") from None
        return D.eval().requires_grad_(False)


def ema_warning(config: dict, step: int, where: str = "") -> str | None:
    """One line when the averaged weights of a run at `step` are still mostly its initial ones (more than half:
    config.ema_initial_share), else None."""
    try:
        decay, rampup = float(config.get("ema_decay", 0.0)), float(config.get("ema_rampup", 0.0))
        share = ema_initial_share(decay, rampup, int(step))
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(share) or share <= 0.5:
        return None
    warm = f"ema_rampup {rampup:g}" if rampup else "no warm-up (ema_rampup 0)"
    return (f"ema: {where + ': ' if where else ''}after {step} steps the averaged weights (ema_decay {decay:g}, "
            f"{warm}) are still {share:.0%} the initial ones, so what they make looks untrained; train longer, or "
            "with ema_rampup (0.05 lets the average follow a run of any length)")


def read(run_or_file: str | Path, step: int | str | None = None, map_location="cpu") -> Saved:
    """The checkpoint of a run folder (its latest, that of `step`, or with step "best" the one keep_best kept) or a
    checkpoint file, checked and read."""
    path = find(run_or_file, step)
    return Saved(path, load(path, map_location))


def generator_from_state(state: dict, ema: bool = True) -> nn.Module:
    """G rebuilt from a checkpoint's contents: the averaged weights when the run kept them (and ema is True)."""
    spec = state.get("G_spec")
    if not isinstance(spec, dict):
        raise UserError("checkpoint: it holds no generator spec (G_spec), so G cannot be rebuilt")
    try:
        check_spec(spec)
        G = generator_from_spec(spec)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001: any constructor error of a damaged spec is the file's fault
        raise UserError(f"checkpoint: its generator spec (G_spec) is not usable ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    use_ema = ema and state.get("G_ema") is not None
    try:
        G.load_state_dict(state["G_ema"] if use_ema else state["G"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        raise UserError(f"checkpoint: its generator weights do not fit its spec ({type(e).__name__})") from None
    return G


# A spec names constructor arguments; these bound the sizes a crafted file could ask for (config.py's limits).
_SPEC_LIMITS = {"z_dim": 1 << 14, "width": 1 << 13, "hidden": 1 << 13, "layers": 64, "img_size": 4096,
                "channels": 4, "c_dim": 1 << 16, "c_embed_dim": 1 << 14, "vbn_ref_size": 1 << 16}


def check_spec(spec: dict) -> None:
    """Refuse a generator spec whose sizes no config allows, before anything is allocated."""
    for key, value in spec.items():
        if key in _SPEC_LIMITS and not (isinstance(value, int) and not isinstance(value, bool)
                                        and 0 <= value <= _SPEC_LIMITS[key]):
            raise UserError(f"checkpoint: generator spec field {key}={value!r} is out of range")
        if key == "out_shape" and not (isinstance(value, (list, tuple)) and 0 < len(value) <= 3 and
                                       all(isinstance(v, int) and 0 < v <= 4096 for v in value)):
            raise UserError(f"checkpoint: generator spec field out_shape={value!r} is out of range")


def all_finite(*modules_or_optimizers) -> bool:
    """Whether every float weight, buffer (batch-norm statistics) and optimizer moment is finite: one device sync."""
    flags = []
    for obj in modules_or_optimizers:
        if obj is None:
            continue
        if isinstance(obj, nn.Module):
            tensors = list(obj.parameters()) + list(obj.buffers())
        else:
            tensors = [v for s in obj.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        flags += [torch.isfinite(t).all() for t in tensors if t.is_floating_point() and t.numel()]
    return bool(torch.stack(flags).all().item()) if flags else True


def nonfinite_parts(state: dict) -> list[str]:
    """Names of the weights in a captured state that hold NaN or infinity (G, D, G_ema and their buffers)."""
    bad = []
    for part in ("G", "D", "G_ema"):
        for name, t in (state.get(part) or {}).items():
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
                bad.append(f"{part}.{name}")
    return bad


def checksum(obj) -> str:
    """SHA-256 of a nest of dicts, lists, tensors and plain values, in a fixed order (keys sorted by their repr)."""
    h = hashlib.sha256()

    def feed(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(o.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            h.update(f"D{len(o)}".encode())
            for k in sorted(o, key=repr):
                h.update(repr(k).encode())
                feed(o[k])
        elif isinstance(o, (list, tuple)):
            h.update(f"L{len(o)}".encode())
            for v in o:
                feed(v)
        else:
            h.update(f"V{o!r}".encode())
    feed(obj)
    return h.hexdigest()


def save(state: dict, path: Path) -> None:
    """Write `state` with its checksum through outputs.write_atomic: a crash leaves the old file or the new one."""
    path = Path(path)
    bad = nonfinite_parts(state)
    if bad:  # the loop's guard comes first; this is the last line of defence for any caller
        raise UserError(f"checkpoint: not writing {path}: {bad[0]} holds NaN or infinity")
    state = {k: v for k, v in state.items() if k != "checksum"}
    state["checksum"] = checksum(state)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) as its own error
                if isinstance(e.__context__, OSError):
                    raise e.__context__ from None
                raise
    outputs.write_atomic(path, write)


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


def save_best(state: dict, folder: Path, metric: str, value: float, step: int) -> Path:
    """checkpoints/best.pt: the captured `state` of step `step`, whose evaluation gave `value` for `metric`, written
    atomically (save); the value goes with it, so that a resumed run knows what to beat."""
    path = Path(folder) / BEST
    save({**state, "best": {"metric": metric, "value": float(value), "step": int(step)}}, path)
    return path


def best_so_far(run_dir: Path, metric: str) -> float | None:
    """The value that checkpoints/best.pt of a run was kept for, when it was kept for `metric`; else None."""
    path = Path(run_dir) / "checkpoints" / BEST
    if not path.is_file():
        return None
    best = load(path).get("best")
    if not isinstance(best, dict) or best.get("metric") != metric or not isinstance(best.get("value"), float):
        return None
    return best["value"]


def _read(path: Path, map_location="cpu") -> dict:
    """The checked contents of a checkpoint file; a UserError (without the last good one) when it is not intact."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd pickle protocols: the error below says it all
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001: a truncated, foreign or corrupt file: torch raises many error types
        raise UserError(f"checkpoint: cannot read {path} ({type(e).__name__}); it is truncated, damaged or not a "
                        "gankit checkpoint") from None
    if not isinstance(state, dict) or "G" not in state or "config" not in state:
        raise UserError(f"checkpoint: {path} is not a gankit checkpoint (no generator or config in it)")
    if "checksum" in state:  # files of format 2 and older have none
        saved = state.pop("checksum")
        if saved != checksum(state):
            raise UserError(f"checkpoint: {path} is damaged (its contents do not match its checksum)")
    if not isinstance(state.get("config"), dict):
        raise UserError(f"checkpoint: {path} holds no config")
    return state


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint's contents (weights_only, checksum verified). A damaged file's error names the newest intact
    checkpoint beside it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint: {path} does not exist")
    try:
        return _read(path, map_location)
    except UserError as e:
        good = last_good(path.parent, exclude=path)
        hint = f"; the newest intact checkpoint is {good}" if good else "; no intact checkpoint beside it"
        raise UserError(f"{e}{hint}") from None


def last_good(folder: Path, exclude: Path | None = None) -> Path | None:
    """The newest step-NNNNNNN.pt in `folder` that reads and checks, other than `exclude` (and its hard links)."""
    folder = Path(folder)
    skip = None
    if exclude is not None:
        try:
            skip = os.stat(exclude).st_ino
        except OSError:
            pass
    for step in reversed(steps_available(folder)):
        f = folder / f"step-{step:07d}.pt"
        try:
            if skip is not None and os.stat(f).st_ino == skip:
                continue
            _read(f)
        except (UserError, OSError):
            continue
        return f
    return None


def find(run_or_file: str | Path, step: int | str | None = None) -> Path:
    """A checkpoint file from a run folder (its latest, the one of `step`, or best.pt for step "best") or a file
    path."""
    p = Path(run_or_file)
    if p.is_file():
        return p
    if not p.is_dir():
        raise UserError(f"checkpoint: {p} is neither a run folder nor a checkpoint file")
    folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if step == "best":
        if not (folder / BEST).is_file():
            raise UserError(f"checkpoint: no {BEST} in {folder}; a run keeps one when trained with keep_best (e.g. "
                            "keep_best fid, with fid in eval_metrics)")
        return folder / BEST
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
