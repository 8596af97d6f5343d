"""Inference without the training code: load a generator from a run, a checkpoint or an export, and sample.

    sampler = load_sampler("runs/dcgan-digits")
    x = sampler(16, labels=torch.full((16,), 3), generator=torch.Generator().manual_seed(0))  # (16, 1, 32, 32)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gankit import checkpoint, viz
from gankit.errors import UserError
from gankit.latent import sample_labels, sample_z, truncate

EXPORT_WEIGHTS = "generator.safetensors"
EXPORT_META = "generator.json"


@dataclass
class Sampler:
    """G plus what sampling needs to know about it: the prior, the classes, the kind of data."""
    G: torch.nn.Module
    prior: str
    class_names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)   # the config it was trained with, the data set's name, ...

    @property
    def z_dim(self) -> int:
        return self.G.z_dim

    @property
    def c_dim(self) -> int:
        return self.G.c_dim

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @property
    def is_points(self) -> bool:
        return len(getattr(self.G, "out_shape", (0, 0, 0))) == 1

    def z(self, n: int, generator: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        return truncate(sample_z(n, self.z_dim, self.prior, generator), truncation, self.prior)

    def labels(self, n: int, cls: int | None = None, generator: torch.Generator | None = None):
        if not self.c_dim:
            if cls is not None:
                raise UserError("sample: --class needs a conditional model; this one has no classes")
            return None
        if cls is None:
            return sample_labels(n, self.c_dim, generator)
        if not 0 <= cls < self.c_dim:
            raise UserError(f"sample: --class must be in 0..{self.c_dim - 1}, got {cls}")
        return torch.full((n,), cls, dtype=torch.long)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
        """G(z, labels) in batches, on G's device; returns a CPU tensor."""
        if self.c_dim and labels is None:
            raise ValueError("a conditional generator needs labels")
        out = []
        for i in range(0, z.shape[0], batch_size):
            y = None if labels is None else labels[i: i + batch_size].to(self.device)
            out.append(self.G(z[i: i + batch_size].to(self.device), y).float().cpu())
        return torch.cat(out)

    def class_grid(self, n: int, generator: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        """(c_dim * n, ...) images: row k is class k; column j uses the same z in every row."""
        if not self.c_dim:
            raise UserError("sample: a class grid needs a conditional model; this one has no classes")
        z = self.z(n, generator, truncation).repeat(self.c_dim, 1)               # (c_dim * n, z_dim)
        labels = torch.arange(self.c_dim).repeat_interleave(n)                    # 0,0,..,1,1,..
        return self.decode(z, labels)

    def __call__(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 truncation: float = 1.0, cls: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples and their labels (None for an unconditional G)."""
        z = self.z(n, generator, truncation)
        if labels is None:
            labels = self.labels(n, cls, generator)
        return self.decode(z, labels), labels


def _from_checkpoint(path: Path, device) -> Sampler:
    state = checkpoint.load(path)
    G = checkpoint.generator_from_state(state).to(device).eval()
    cfg = state["config"]
    return Sampler(G, cfg["prior"], list(state.get("class_names", [])),
                   {"config": cfg, "step": state.get("step"), "source": str(path), "data": cfg["data"],
                    "ema": state.get("G_ema") is not None})


def _from_export(folder: Path, device) -> Sampler:
    from gankit.export import load_generator

    try:
        meta = json.loads((folder / EXPORT_META).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"sample: cannot load the exported generator in {folder} ({e})".splitlines()[0]) from None
    try:
        G = load_generator(folder, device)
    except UserError as e:
        raise UserError(str(e).replace("export: ", "sample: ", 1)) from None
    return Sampler(G, meta["prior"], meta.get("class_names", []), {**meta, "source": str(folder)})


def load_sampler(source: str | Path, device: str = "cpu", step: int | None = None) -> Sampler:
    """A run folder (its G_ema when trained with one, else G), a checkpoint file, or an export folder."""
    p = Path(source)
    if p.is_dir() and (p / EXPORT_META).is_file():
        return _from_export(p, device)
    return _from_checkpoint(checkpoint.find(p, step), device)


def save_samples(sampler: Sampler, x: torch.Tensor, labels: torch.Tensor | None, out: Path) -> Path:
    """FILE.npz: `images` uint8 (N, H, W, C) (or `points` float (N, 2)), plus `labels` when conditional.
    A folder path gets one PNG per image (or a scatter plot for points)."""
    out = Path(out)
    if out.suffix == ".npz":
        if out.exists():
            raise UserError(f"sample: {out} exists; choose another file name (nothing is overwritten)")
        arrays = {"points": x.numpy().astype(np.float32)} if sampler.is_points else {"images": viz.to_uint8(x)}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **arrays)
        return out
    if out.suffix:
        raise UserError(f"sample: --out must end in .npz or be a folder, got {out}")
    out.mkdir(parents=True, exist_ok=True)
    if sampler.is_points:
        return viz.save_scatter(x, out / "points.png")
    taken = sorted(out.glob("*.png"))
    if taken:
        raise UserError(f"sample: {out} already holds {len(taken)} PNG files; choose an empty folder")
    from PIL import Image

    arr = viz.to_uint8(x)
    for i, im in enumerate(arr):
        name = f"{i:05d}" + (f"_class{int(labels[i])}" if labels is not None else "") + ".png"
        Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(out / name)
    return out
