"""Inference without the training code: load a generator from a run, a checkpoint or an export, and sample.

    sampler = load_sampler("runs/dcgan-digits")
    x = sampler(16, labels=torch.full((16,), 3), generator=torch.Generator().manual_seed(0))  # (16, 1, 32, 32)

Reading an export back (load_generator) lives here, and writing one in gankit.export, which imports this module:
sampling never needs the writer.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from gankit import audio, checkpoint, guided, outputs, registry, viz
from gankit.errors import ConfigError, UserError
from gankit.latent import sample_labels, sample_z, truncate
from gankit.models import generator_from_spec

EXPORT_WEIGHTS = "generator.safetensors"
EXPORT_META = "generator.json"
log = logging.getLogger("gankit")


@dataclass
class Sampler:
    """G plus what sampling needs to know about it: the prior, the classes, the kind of data."""
    G: torch.nn.Module
    prior: str
    class_names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)   # the config it was trained with, the data set's name, ...
    D: torch.nn.Module | None = None           # the run's D, for D-guided sampling (gankit.guided); None in exports
    guide: str = "none"                        # the guide __call__ uses when not told (the run's config `guide`)
    options: guided.Options = field(default_factory=guided.Options)   # the guides' settings
    g_forwards: int = 0                        # G forward passes so far (guided sampling reports its cost)
    last_cost: guided.Cost | None = None       # what the last guided draw cost
    _critic: guided.Critic | None = None

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

    @property
    def guides(self) -> list[str]:
        """The D-guided options this source supports: all of them when it holds D (a run of task gan), else none."""
        return [g for g, e in registry.GUIDES.items() if e.uses_d] if self.D is not None else []

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, labels) on G's device, with gradients when the caller enables them (DDLS, inpainting)."""
        self.g_forwards += z.shape[0]
        return self.G(z, labels).float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
        """G(z, labels) in batches, on G's device; returns a CPU tensor."""
        if self.c_dim and labels is None:
            raise ValueError("a conditional generator needs labels")
        out = []
        for i in range(0, z.shape[0], batch_size):
            y = None if labels is None else labels[i: i + batch_size].to(self.device)
            out.append(self.forward(z[i: i + batch_size].to(self.device), y).cpu())
        return torch.cat(out)

    def critic(self, generator: torch.Generator | None = None) -> guided.Critic:
        """D as a calibrated score of single samples, made once: calibrated on the run's real images
        (gankit.guided.real_images) against G's samples."""
        if self._critic is None:
            if self.D is None:
                raise ConfigError("guide", "needs the run's discriminator, and this source holds none")
            gen = generator or torch.Generator().manual_seed(0)
            critic = guided.Critic(self.D, self, gen)
            reals, labels, source = guided.real_images(self.meta["config"], self.options.calibration_n)
            cal = critic.calibrate(reals, labels, source, gen)
            log.info(f"guide: D calibrated on {cal.n} {source} real images and as many G samples: s = {cal.a:.3g} "
                     f"x logit {cal.b:+.3g}; it tells them apart {100 * cal.accuracy:.1f} % of the time")
            self._critic = critic
        return self._critic

    def class_grid(self, n: int, generator: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        """(c_dim * n, ...) images: row k is class k; column j uses the same z in every row."""
        if not self.c_dim:
            raise UserError("sample: a class grid needs a conditional model; this one has no classes")
        if audio.is_audio(self.G):
            raise UserError("sample: a class grid is an image; this run makes recordings (--out FILE.png draws "
                            "their spectrograms, with --class K for one class)")
        z = self.z(n, generator, truncation).repeat(self.c_dim, 1)               # (c_dim * n, z_dim)
        labels = torch.arange(self.c_dim).repeat_interleave(n)                    # 0,0,..,1,1,..
        return self.decode(z, labels)

    def __call__(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 truncation: float = 1.0, cls: int | None = None,
                 guide: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples and their labels (None for an unconditional G). guide: none, drs, mh or ddls (gankit.guided);
        None takes the source's default (its run's `guide`). A guided draw's cost is in `last_cost`."""
        guide = guided.check(self.guide if guide is None else guide, self)
        if guide == "none":
            z = self.z(n, generator, truncation)
            if labels is None:
                labels = self.labels(n, cls, generator)
            self.last_cost = None
            return self.decode(z, labels), labels
        critic = self.critic()
        if labels is None:
            labels = self.labels(n, cls, generator)
        x, self.last_cost = guided.sample(self, critic, guide, n, labels, generator, truncation, self.options)
        return x, labels


WEIGHTS = ("ema", "raw")


def _from_checkpoint(saved: checkpoint.Saved, device, weights: str) -> Sampler:
    G = saved.generator(ema=weights == "ema").to(device)
    cfg = saved.config
    if cfg.get("prior") not in registry.PRIORS or "data" not in cfg:
        raise UserError(f"checkpoint: {saved.path} holds a config without a valid prior or data set")
    # D-guided sampling scores single samples; a D with virtual batch norm needs its reference batch beside them
    task = registry.task(saved.task)
    why_not = (f"the run's task is not {registry.tasks_with(guided=True)}" if task is None or not task.guided else
               "its D normalises by a reference batch (d_norm virtual_batch)" if cfg.get("d_norm") == "virtual_batch"
               else "the checkpoint holds no D" if "D" not in saved.state else None)
    D = None
    if why_not is None:
        try:  # a damaged D takes the guides away, not plain sampling
            D = saved.discriminator().to(device)
        except UserError as e:
            why_not = str(e).replace("checkpoint: ", "", 1)
    guide = cfg.get("guide", "none")
    return Sampler(G, cfg["prior"], saved.class_names,
                   {"config": cfg, "step": saved.step, "source": str(saved.path), "data": cfg["data"],
                    "ema": saved.has_ema and weights == "ema", "weights": weights, "no_guide": why_not},
                   D=D, guide=guide if guide in registry.GUIDES else "none")


REEXPORT = "re-export it from its run (gankit export RUN --out DIR)"


def load_generator(folder: str | Path, device: str = "cpu") -> torch.nn.Module:
    """G rebuilt from an export folder alone: generator.json's architecture and arguments, then the weights,
    checked against the recorded SHA-256 and against G itself (every tensor there, of G's shape and dtype, finite),
    and one forward pass that must give finite values. In eval mode, on `device`. Every refusal is a UserError
    "export: cannot load the exported generator in DIR (what is wrong, in which file)"."""
    folder = Path(folder)
    try:
        meta = _read_meta(folder)
        G, weights = _build(meta), _weights_file(folder, meta)
        _check_checksum(folder, meta, weights)
        state = load_file(str(weights))
        _check_tensors(G, state, weights.name)
        G.load_state_dict(state)
        _check_output(G.eval(), weights.name)
    except _Refused as e:
        raise UserError(f"export: cannot load the exported generator in {folder} ({e})") from None
    except Exception as e:  # noqa: BLE001: a missing, truncated or edited export: json, safetensors and the model
        # constructors raise many error types, and every one of them means the same to the user
        detail = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"export: cannot load the exported generator in {folder} ({detail})") from None
    return G.to(device).eval()


class _Refused(Exception):
    """An export that is readable but wrong; the message names the file and what is wrong."""


def _read_meta(folder: Path) -> dict:
    meta = json.loads((folder / EXPORT_META).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{EXPORT_META} holds no generator description")
    return meta


def _build(meta: dict) -> torch.nn.Module:
    if meta.get("architecture") is not None:  # format 2; format 1 had the spec alone
        if not isinstance(meta.get("arguments"), dict):
            raise ValueError(f"{EXPORT_META} holds no constructor arguments")
        spec = {"arch": meta["architecture"], **meta["arguments"]}
    else:
        spec = meta["spec"]
    if not isinstance(spec, dict):
        raise ValueError(f"{EXPORT_META} holds no generator spec")
    checkpoint.check_spec(spec)
    try:
        return generator_from_spec(spec)
    except (ValueError, TypeError) as e:  # an unknown architecture, an argument the class does not take
        raise _Refused(f"{EXPORT_META}: {(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None


def _weights_file(folder: Path, meta: dict) -> Path:
    record = meta.get("weights")
    name = record.get("file", EXPORT_WEIGHTS) if isinstance(record, dict) else EXPORT_WEIGHTS
    weights = folder / Path(str(name)).name                 # inside the export folder, whatever the json says
    if not weights.is_file():
        raise _Refused(f"{weights.name} is missing; copy the whole export folder, or {REEXPORT}")
    return weights


def _check_checksum(folder: Path, meta: dict, weights: Path) -> None:
    """Format 2 records the weights' SHA-256 and must still hold it; an export of format 1 (which had none) is read
    with a warning."""
    record = meta.get("weights")
    want = record.get("sha256") if isinstance(record, dict) else None
    old = meta.get("format_version") in (None, 1) and meta.get("architecture") is None and record is None
    if want is None and old:
        log.warning(f"export: {folder} is an export of format 1, which records no checksum: its weights are not "
                    f"checked; {REEXPORT} to have them checked")
        return
    if not (isinstance(want, str) and re.fullmatch(r"[0-9a-f]{64}", want)):
        got = "" if want is None else f" (weights.sha256 is {str(want)[:40]!r})"
        raise _Refused(f"{EXPORT_META} records no SHA-256 of {weights.name}{got}, so the weights cannot be checked; "
                       f"{REEXPORT}, or, if you trust the file, write its SHA-256 (sha256sum) into weights.sha256")
    if checkpoint.sha256_file(weights) != want:
        raise _Refused(f"{weights.name} does not match the SHA-256 in {EXPORT_META}: it was altered or damaged; "
                       f"{REEXPORT}")


def _check_tensors(G: torch.nn.Module, state: dict, name: str) -> None:
    """Every tensor G has, of G's shape and dtype (load_state_dict would cast a float16 or int64 one), finite;
    none that G has not."""
    want = G.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    arch = type(G).__module__.rsplit(".", 1)[-1]
    if missing:
        raise _Refused(f"{name} lacks {len(missing)} tensor(s) of the {arch} generator ({', '.join(missing[:3])}"
                       f"{', ...' if len(missing) > 3 else ''}); {REEXPORT}")
    if extra:
        raise _Refused(f"{name} holds {len(extra)} tensor(s) that the {arch} generator has not ({', '.join(extra[:3])}"
                       f"{', ...' if len(extra) > 3 else ''}); {REEXPORT}")
    for key, ref in want.items():
        t = state[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise _Refused(f"{name}: {key} has shape {tuple(t.shape)}, the generator's is {tuple(ref.shape)}; "
                           f"{REEXPORT}")
        if t.dtype != ref.dtype:
            raise _Refused(f"{name}: {key} is {str(t.dtype).replace('torch.', '')}, the generator's is "
                           f"{str(ref.dtype).replace('torch.', '')}; {REEXPORT}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise _Refused(f"{name}: {key} holds NaN or infinity; {REEXPORT} (from a checkpoint with finite weights)")


@torch.no_grad()
def _check_output(G: torch.nn.Module, name: str) -> None:
    """Finite weights can still make a G that gives NaN (a negative batch-norm variance): one small batch tells."""
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(2) % G.c_dim if G.c_dim else None
    if not torch.isfinite(G(z, y)).all():
        raise _Refused(f"the weights in {name} make the generator give NaN or infinity; {REEXPORT}")


def _from_export(folder: Path, device) -> Sampler:
    try:
        meta = json.loads((folder / EXPORT_META).read_text(encoding="utf-8"))
        prior, class_names = meta["prior"], meta.get("class_names", [])
        if prior not in registry.PRIORS:
            raise ValueError(f"unknown prior {prior!r}")
        if not (isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)):
            raise ValueError(f"{EXPORT_META}: class_names is not a list of names")
    except Exception as e:  # noqa: BLE001: a missing, truncated or edited generator.json
        detail = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"sample: cannot load the exported generator in {folder} ({detail})") from None
    try:
        G = load_generator(folder, device)
    except UserError as e:
        raise UserError(str(e).replace("export: ", "sample: ", 1)) from None
    if G.c_dim and class_names and len(class_names) != G.c_dim:  # an unconditional G keeps the data's names
        raise UserError(f"sample: cannot load the exported generator in {folder} ({EXPORT_META} names "
                        f"{len(class_names)} classes, the generator has {G.c_dim}; {REEXPORT})")
    return Sampler(G, prior, list(class_names), {**meta, "source": str(folder)})


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


def load_sampler(source: str | Path, device: str = "cpu", step: int | None = None, weights: str = "ema") -> Sampler:
    """A run folder, a checkpoint file, or an export folder. weights: ema (G's average when the run kept one, else
    G) or raw (G as trained, from a run or checkpoint). From a run of task gan, the sampler holds D too, for
    D-guided sampling."""
    check_device(device)
    if weights not in WEIGHTS:
        raise ConfigError("weights", f"{weights!r} is not one of {', '.join(WEIGHTS)}")
    p = Path(source)
    if p.is_dir() and (p / EXPORT_META).is_file():
        if weights == "raw":
            raise ConfigError("weights", f"{p} is an export, which holds one generator (the average when the run "
                                         "kept one); sample the run or its checkpoint for the raw weights")
        return _from_export(p, device)
    return _from_checkpoint(checkpoint.read(p, step), device, weights)


def sample_paths(sampler: Sampler, n: int, labels: torch.Tensor | None, out: Path) -> list[Path]:
    """The files `save_samples` writes for `out`: FILE.npz, FILE.png, or in a folder one PNG per image (points.png
    for 2-D points, one .wav per clip of recordings)."""
    out = Path(out)
    if audio.is_audio(sampler.G):
        return audio.sample_paths(n, labels, out)
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
    are refused unless force (outputs.py). Recordings: gankit.audio.save_samples (FILE.npz holds `audio`, a
    FILE.png is a spectrogram sheet, a folder gets .wav files)."""
    out = Path(out)
    if audio.is_audio(sampler.G):
        return audio.save_samples(sampler.G, sampler.class_names, x, labels, out, force)
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
