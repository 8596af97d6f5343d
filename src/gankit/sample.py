"""Inference without the training code: load a generator from a run, a checkpoint or an export, and sample.

    sampler = load_sampler("runs/dcgan-digits")
    x = sampler(16, labels=torch.full((16,), 3), generator=torch.Generator().manual_seed(0))  # (16, 1, 32, 32)

Reading an export back (load_generator) lives here, and writing one in gankit.export, which imports this module:
sampling never needs the writer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from gankit import checkpoint, outputs, registry, viz
from gankit.errors import UserError
from gankit.latent import sample_labels, sample_z, truncate
from gankit.models import generator_from_spec

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


def _from_checkpoint(saved: checkpoint.Saved, device) -> Sampler:
    G = saved.generator().to(device)
    cfg = saved.config
    if cfg.get("prior") not in registry.PRIORS or "data" not in cfg:
        raise UserError(f"checkpoint: {saved.path} holds a config without a valid prior or data set")
    return Sampler(G, cfg["prior"], saved.class_names,
                   {"config": cfg, "step": saved.step, "source": str(saved.path), "data": cfg["data"],
                    "ema": saved.has_ema})


def load_generator(folder: str | Path, device: str = "cpu") -> torch.nn.Module:
    """G rebuilt from an export folder alone: generator.json's architecture and arguments, then the weights
    (checked against the recorded SHA-256). In eval mode, on `device`."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / EXPORT_META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"{EXPORT_META} holds no generator description")
        if meta.get("architecture") is not None:  # format 2; format 1 had the spec alone
            if not isinstance(meta.get("arguments"), dict):
                raise ValueError(f"{EXPORT_META} holds no constructor arguments")
            spec = {"arch": meta["architecture"], **meta["arguments"]}
        else:
            spec = meta["spec"]
        if not isinstance(spec, dict):
            raise ValueError(f"{EXPORT_META} holds no generator spec")
        checkpoint.check_spec(spec)
        weights = folder / Path(str(meta.get("weights", {}).get("file", EXPORT_WEIGHTS))).name
        want = meta.get("weights", {}).get("sha256")
        if want and checkpoint.sha256_file(weights) != want:
            raise ValueError(f"{weights.name} does not match the SHA-256 in {EXPORT_META}")
        G = generator_from_spec(spec)
        G.load_state_dict(load_file(str(weights)))
    except Exception as e:  # noqa: BLE001: a missing, truncated or edited export: json, safetensors and the model
        # constructors raise many error types, and every one of them means the same to the user
        detail = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"export: cannot load the exported generator in {folder} ({detail})") from None
    return G.to(device).eval()


def _from_export(folder: Path, device) -> Sampler:
    try:
        meta = json.loads((folder / EXPORT_META).read_text(encoding="utf-8"))
        prior, class_names = meta["prior"], list(meta.get("class_names", []))
        if prior not in registry.PRIORS:
            raise ValueError(f"unknown prior {prior!r}")
    except Exception as e:  # noqa: BLE001: a missing, truncated or edited generator.json
        detail = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"sample: cannot load the exported generator in {folder} ({detail})") from None
    try:
        G = load_generator(folder, device)
    except UserError as e:
        raise UserError(str(e).replace("export: ", "sample: ", 1)) from None
    return Sampler(G, prior, class_names, {**meta, "source": str(folder)})


def check_device(name: str) -> str:
    """cpu, cuda or cuda:N, and one that this machine has."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise UserError(f"--device: {name!r} is not one of cpu, cuda, cuda:N")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= count:
            raise UserError(f"--device: {name} asked for, but torch sees {count} CUDA device(s); use cpu")
    return name


def load_sampler(source: str | Path, device: str = "cpu", step: int | None = None) -> Sampler:
    """A run folder (its G_ema when trained with one, else G), a checkpoint file, or an export folder."""
    check_device(device)
    p = Path(source)
    if p.is_dir() and (p / EXPORT_META).is_file():
        return _from_export(p, device)
    return _from_checkpoint(checkpoint.read(p, step), device)


def sample_paths(sampler: Sampler, n: int, labels: torch.Tensor | None, out: Path) -> list[Path]:
    """The files `save_samples` writes for `out`: FILE.npz, FILE.png, or in a folder one PNG per image (points.png
    for 2-D points)."""
    out = Path(out)
    if out.suffix in (".npz", ".png"):
        return [out]
    if out.suffix:
        raise UserError(f"sample: --out must end in .npz or .png, or be a folder, got {out}")
    if sampler.is_points:
        return [out / "points.png"]
    return [out / (f"{i:05d}" + (f"_class{int(labels[i])}" if labels is not None else "") + ".png") for i in range(n)]


def save_samples(sampler: Sampler, x: torch.Tensor, labels: torch.Tensor | None, out: Path,
                 force: bool = False) -> Path:
    """FILE.npz: `images` uint8 (N, H, W, C) (or `points` float (N, 2)), plus `labels` when conditional.
    FILE.png: a grid (a scatter plot for points). A folder gets one PNG per image (or points.png). Existing files
    are refused unless force (outputs.py)."""
    out = Path(out)
    paths = sample_paths(sampler, x.shape[0], labels, out)
    outputs.check_new("sample", *paths, force=force)
    outputs.out_folder("sample", paths[0].parent)
    if out.suffix == ".npz":
        arrays = {"points": x.numpy().astype(np.float32)} if sampler.is_points else {"images": viz.to_uint8(x)}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        return outputs.write_atomic(out, lambda tmp: np.savez_compressed(tmp, **arrays))
    if sampler.is_points:
        return outputs.write_atomic(paths[0], lambda tmp: viz.save_scatter(x, tmp))
    if out.suffix == ".png":
        return outputs.write_atomic(out, lambda tmp: viz.save_grid(x, tmp))
    from PIL import Image

    for im, path in zip(viz.to_uint8(x), paths):
        outputs.write_atomic(path, lambda tmp: Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(tmp))
    return out
