"""The runs a `gankit serve` was started with, and what their pages use, each loaded once and kept.

A Run is one folder given on the command line (a run folder, or an exported generator), resolved once: a request
names a run by its id and a file by what the page asks for (a step), and every file is checked to lie inside the
folder, symlinks resolved (`inside`). The models come from the same functions as the command line's:
gankit.sample.load_sampler, gankit.tasks.gan.inpaint.load_models, gankit.tasks.sr.upscale.load_upscaler,
gankit.tasks.ssl.classify.load_classifier and gankit.tasks.predict.futures.load_predictor (with the held-out
sequences `gankit predict --context heldout` reads, and a 2-D run's real points from gankit.setup.load_data); a
model is reloaded when the run writes a newer checkpoint.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from gankit import checkpoint, config as config_mod, explore, registry, setup
from gankit.tasks.ssl import classify
from gankit.tasks.gan import inpaint
from gankit.tasks.predict import futures as predict
from gankit.tasks.sr import upscale
from gankit.config import POINT_DATASETS, Config
from gankit.data.moving import SequenceSet, sequence_parts
from gankit.errors import UserError
from gankit.sample import EXPORT_META, Sampler, load_sampler

# gankit.sample's interface, read once: D-guided sampling (Sampler.guides, __call__'s guide=) and the choice of
# weights (load_sampler's weights=) are used where this gankit has them.
LOAD_TAKES_WEIGHTS = "weights" in inspect.signature(load_sampler).parameters
CALL_TAKES_GUIDE = "guide" in inspect.signature(Sampler.__call__).parameters
WEIGHTS = ("ema", "raw")
DIRECTIONS = 8            # sliders along the principal directions
DIRECTION_DRAWS = 2000    # draws of z their PCA is taken over

# the interactive inpainting search: a smaller bank and fewer steps than `gankit inpaint`'s, for an answer in about
# a second on one CPU core
INPAINT_SEARCH = inpaint.Search(candidates=512, restarts=2, steps=60, batch_size=1, precision="fp32")


# the tools that need the run's D, which an export does not hold
NEEDS_D = {"inpaint"}


def inside(root: Path, *parts: str) -> Path | None:
    """root/parts as a file that lies inside root once every symlink is resolved, else None."""
    try:
        path = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):   # missing, or a symlink loop
        return None
    return path if path.is_relative_to(root) and path.is_file() else None


@dataclass
class Run:
    """One served folder: its id in URLs, where it is (resolved), and what it is (its task, from config.yaml)."""
    id: str
    path: Path
    kind: str                    # "run" or "export"
    config: dict = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)   # one model call at a time
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def task(self) -> str:
        return self.config.get("task", "gan")

    @property
    def points(self) -> bool:
        return self.config.get("data") in POINT_DATASETS

    @property
    def makes(self) -> str:
        """What G makes: "images", "audio" (recordings: wavegan, specgan), "points" (2-D) or "futures" (frame
        sequences of task predict); "none" for a task without a generator the pages can use."""
        model = registry.MODELS.get(self.config.get("model", "dcgan"))
        task = registry.task(self.task)
        if task is None:
            return "none"
        if task.sequences:
            return "futures"
        return "audio" if model is not None and model.audio else "points" if self.points else "images"

    def apps(self) -> list[str]:
        """The pages' tools that this run has (its task's registry row says which). Recordings are explored as images
        are (the grid, sliders, paths), heard and seen as spectrograms, without the arithmetic; 2-D points get a
        scatter plot of samples; a task whose G does not sample from z alone has its own tools only."""
        task = registry.task(self.task)
        if task is None:
            return []
        if not task.samples:
            return list(task.tools)
        if self.makes != "images":
            return {"audio": ["explore"], "points": ["scatter"]}.get(self.makes, [])
        return ["explore", "arithmetic"] + [t for t in task.tools if self.kind == "run" or t not in NEEDS_D]

    def _stamp(self):
        """What changes when the run saves a checkpoint (or the export is rewritten)."""
        path = inside(self.path, EXPORT_META) if self.kind == "export" else \
            inside(self.path, "checkpoints", checkpoint.LATEST)
        if path is None:
            raise UserError(f"serve: {self.id} has no checkpoint yet; its run page shows its progress")
        st = path.stat()
        return st.st_mtime_ns, st.st_size

    def cached(self, key, make):
        """make() once per key and checkpoint; call with self.lock held."""
        stamp = self._stamp()
        hit = self._cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = self._cache[key] = (stamp, make())
        return hit[1]

    def sampler(self, weights: str = "ema") -> Sampler:
        """The run's Sampler, with the averaged G ("ema", when the run kept one) or the trained G ("raw")."""
        if "explore" not in self.apps() and "scatter" not in self.apps():
            raise UserError(f"serve: {self.id} is a run of task {self.task}"
                            + (" that predicts frames" if self.makes == "futures" else "")
                            + "; it has no samples to explore (its run page shows its curves and evaluations)")
        if weights != "ema" and weights not in self.weights():
            raise UserError(f"weights: {weights!r} is not one of {', '.join(self.weights())} for {self.id}")

        def make():
            kwargs = {"weights": weights} if weights != "ema" else {}
            return load_sampler(self.path, "cpu", **kwargs)
        return self.cached(("sampler", weights), make)

    def weights(self) -> list[str]:
        """The weights a page may choose: both when load_sampler takes weights= and the run kept an average."""
        if not LOAD_TAKES_WEIGHTS or self.kind == "export" or not self.sampler("ema").meta.get("ema"):
            return ["ema"]
        return list(WEIGHTS)

    def directions(self, weights: str = "ema") -> explore.Directions:
        sampler = self.sampler(weights)
        return self.cached(("directions", weights),
                           lambda: explore.principal_directions(sampler, DIRECTIONS, DIRECTION_DRAWS))

    def inpainter(self):
        """(G, D) of `gankit inpaint`: the averaged G when kept, and D for the prior loss (None when it judges
        packs)."""
        self.require("inpaint")
        return self.cached("inpaint", lambda: inpaint.load_models(self.path, "cpu")[:2])

    def upscaler(self) -> torch.nn.Module:
        self.require("upscale")
        return self.cached("upscale", lambda: upscale.load_upscaler(self.path, "cpu")[0])

    def classifier(self) -> torch.nn.Module:
        self.require("classify")
        return self.cached("classify", lambda: classify.load_classifier(self.path, "cpu"))

    def predictor(self) -> tuple[torch.nn.Module, Config]:
        """(G, config) of `gankit predict`: the averaged G when kept."""
        self.require("futures")
        return self.cached("predict", lambda: predict.load_predictor(self.path, "cpu"))

    def held_out(self) -> SequenceSet:
        """The run's held-out sequences (uint8), as `gankit predict --context heldout` reads them, made once."""
        _, cfg = self.predictor()
        return self.cached("held_out", lambda: setup.held_out(sequence_parts(cfg)[1]))

    def real_points(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(the true mode centres or None, up to 2,500 training points): what the run's scatter plots show under
        G's points (run.save_pictures)."""
        self.require("scatter")
        cfg = config_mod.load(None, self.sampler().meta["config"])

        def make():
            data = setup.load_data(cfg)
            return data.modes, data.x[:2500].cpu()
        return self.cached("points", make)

    def require(self, tool: str) -> None:
        if tool not in self.apps():
            raise UserError(f"serve: {self.id} (a run of task {self.task}) has no {tool}")


def guides(sampler: Sampler) -> list[str]:
    """The D-guided sampling options of this sampler; none where this gankit's Sampler takes no guide."""
    return list(getattr(sampler, "guides", []) or []) if CALL_TAKES_GUIDE else []


@torch.no_grad()
def draw(sampler: Sampler, n: int, seed: int, truncation: float = 1.0, cls: int | None = None,
         guide: str = "none"):
    """The page's grid: (images (n, C, H, W), labels (n,) or None, z (n, z_dim) or None). Without a guide the grid is
    `gankit sample --sheet --seed S --n N` (explore.sheet, the draw order of Sampler.__call__), so tile i is sheet
    index i and its z is known; with a guide (D-guided sampling: rejection, MCMC or Langevin) Sampler.__call__
    chooses the samples, and their z is not returned."""
    if guide == "none":
        z, labels, _ = explore.sheet(sampler, n, seed, truncation, cls)
        return sampler.decode(z, labels), labels, z
    if guide not in guides(sampler):
        raise UserError(f"guide: {guide!r} is not one of none{''.join(', ' + g for g in guides(sampler))}")
    gen = torch.Generator().manual_seed(seed)
    x, labels = sampler(n, generator=gen, truncation=truncation, cls=cls, guide=guide)
    return x, labels, None


def _config(path: Path) -> dict:
    """config.yaml of a run folder (safe_load: plain data only), or {} when it has none yet."""
    file = inside(path, "config.yaml")
    if file is None:
        return {}
    try:
        cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"serve: cannot read {file} ({type(e).__name__})") from None
    return cfg if isinstance(cfg, dict) else {}


def open_runs(sources: list[str | Path]) -> dict[str, Run]:
    """The served runs by id (the folder's name, numbered when two share one). Each must be a run folder (it has
    config.yaml or checkpoints/) or an export folder (generator.json)."""
    runs: dict[str, Run] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.is_dir():
            raise UserError(f"serve: {path} is not a folder; give run folders (train's --out/NAME) or exports")
        path = path.resolve()
        if (path / EXPORT_META).is_file():
            kind, cfg = "export", _export_config(path)
        elif (path / "config.yaml").is_file() or (path / "checkpoints").is_dir():
            kind, cfg = "run", _config(path)
        else:
            raise UserError(f"serve: {path} is neither a run folder (no config.yaml or checkpoints/) nor an export "
                            f"({EXPORT_META})")
        stem = re.sub(r"[^\w.-]+", "_", path.name).strip("._") or "run"
        rid, i = stem, 2
        while rid in runs:
            rid, i = f"{stem}-{i}", i + 1
        runs[rid] = Run(rid, path, kind, cfg)
    if not runs:
        raise UserError("serve: give one or more run folders")
    return runs


def _export_config(path: Path) -> dict:
    try:
        meta = json.loads((path / EXPORT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    cfg = meta.get("config") if isinstance(meta, dict) else None
    return cfg if isinstance(cfg, dict) else {"data": meta.get("data")} if isinstance(meta, dict) else {}
