"""What training and inference both need before the first step: the device, the data set read once and split, the
config filled in from the data, the seeds, the GAN's models and their fixed inputs. No loop lives here, so the
commands that only use a trained model (sample, inpaint, upscale, classify) import this and never the training code.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import random
from pathlib import Path

import numpy as np
import torch

from gankit import data as datasets, distributed, metrics, models, outputs, registry, viz
from gankit.data import folder
from gankit.data.stream import Draw
from gankit.config import Config
from gankit.errors import ConfigError, UserError
from gankit.latent import sample_z

log = logging.getLogger("gankit")


def resolve_device(name: str, ctx: distributed.Context) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{name} asked for, but torch sees no CUDA device; use cpu or auto")
        if name == "cuda":
            name = f"cuda:{ctx.local_rank}"
        if int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError("device", f"{name} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def device_kind(cfg: Config) -> str:
    """The kind of device a torchrun process group is set up for: cuda or cpu (gloo)."""
    return "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"


def load_parts(cfg: Config):
    """The data set, read once: (all of it, the training part without the `holdout` examples, those examples or
    None when the run held none out)."""
    data = datasets.from_config(follow_folder(cfg))
    if not cfg.holdout:
        return data, data, None
    if not isinstance(data, datasets.Dataset):
        raise ConfigError("holdout", "holds examples out of a data set in memory; use it with stream off")
    train_idx, held_idx = datasets.holdout_indices(len(data), cfg.holdout)
    return data, data.subset(train_idx), data.subset(held_idx)


def follow_folder(cfg: Config) -> Config:
    """A folder's config as its images decide: img_size 0 becomes the size auto_size picks from the files' headers
    (resolve then records it), and images without colour that become RGB are said."""
    if not cfg.data.startswith("folder:"):
        return cfg
    found = folder.scan(Path(cfg.data[len("folder:"):]))
    if cfg.img_size == 0:
        size, side = folder.auto_size(found, registry.MODELS[cfg.model].sizes, cfg.resize)
        which = "longer" if cfg.resize == "pad" else "shorter"
        log.info(f"data: img_size {size}, from the images: their median {which} side is {side} px ({_of(found)} "
                 f"headers read) and {cfg.model} builds "
                 f"{', '.join(map(str, registry.MODELS[cfg.model].sizes))}; set img_size to choose another")
        cfg = dataclasses.replace(cfg, img_size=size)
    if found.gray and cfg.channels != 1:
        log.info(f"data: {found.gray:,} of {_of(found)} images are grayscale, converted to RGB (3 equal channels)"
                 + ("; set channels 1 to train in grayscale" if found.gray == len(found.sizes) else ""))
    return cfg


def _of(found: folder.Scan) -> str:
    return f"a sample of {len(found.sizes):,}" if found.sampled else f"{len(found.sizes):,}"


def load_data(cfg: Config, part: str = "train") -> datasets.Dataset:
    """The training data, without the `holdout` examples; part="held_out": those examples alone."""
    _, train, held = load_parts(cfg)
    return held_out(held) if part == "held_out" else train


def held_out(held: datasets.Dataset | None) -> datasets.Dataset:
    """load_parts' held-out part, or the error that says the run held nothing out."""
    if held is None:
        raise ConfigError("holdout", "this run held no examples out of training (train it with holdout set to the "
                                     "number to keep out)")
    return held


def resolve(cfg: Config, data: datasets.Dataset, world_size: int = 1) -> Config:
    """Fill in what the data set decides (channels, class count) and check what only the data can tell."""
    changes = {}
    if not data.is_points and cfg.channels == 0:
        changes["channels"] = data.shape[0]
    if not data.is_points and cfg.img_size == 0:  # chosen from the images (follow_folder)
        changes["img_size"] = data.shape[-1]
    cond = changes["cond"] = _cond(cfg, data)
    if cfg.xflip:
        log.info(f"data: xflip: each of the {len(data):,} training images is also shown mirrored left-right, "
                 f"{2 * len(data):,} in all")
    if cond != "none":
        if data.num_classes < 2:
            raise ConfigError("cond", f"data set {cfg.data} has no class labels to condition on")
        if cfg.c_dim and cfg.c_dim != data.num_classes:
            raise ConfigError("c_dim", f"data set {cfg.data} has {data.num_classes} classes, not {cfg.c_dim}")
        changes["c_dim"] = data.num_classes
    elif cfg.c_dim:  # cond auto on data without classes
        raise ConfigError("c_dim", f"data set {cfg.data} has no class labels; leave c_dim 0")
    check_batch_size(cfg, data, world_size)
    if "virtual_batch" in (cfg.g_norm, cfg.d_norm) and cfg.vbn_ref_size > len(data):
        raise ConfigError("vbn_ref_size", f"{cfg.vbn_ref_size} exceeds the {len(data)} examples of {cfg.data}")
    if cfg.eval_metrics:
        metrics.check_names(metric_names(cfg.eval_metrics), metrics.data_kind(data),
                            cond != "none", "eval_metrics", data.name)
    return dataclasses.replace(cfg, **changes)


def _cond(cfg: Config, data) -> str:
    """cond, with auto decided by the data: projection when it has classes (a folder's sub-folders), else none."""
    if cfg.cond != "auto":
        return cfg.cond
    if data.num_classes >= 2:
        log.info(f"data: {data.num_classes} classes ({', '.join(data.class_names[:5])}"
                 f"{', ...' if data.num_classes > 5 else ''}): training a class-conditional model (cond projection); "
                 "cond none trains without them")
        return "projection"
    return "none"


def check_batch_size(cfg: Config, data, world_size: int = 1) -> None:
    """A global batch that the training data can fill (every task's set-up checks it before any folder exists)."""
    if cfg.batch_size * world_size > len(data):
        raise ConfigError("batch_size", f"{cfg.batch_size} x {world_size} process(es) exceeds the {len(data)} "
                                        f"training examples of {cfg.data}")


def metric_names(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


def averaged_copy(net: torch.nn.Module, decay: float) -> torch.nn.Module | None:
    """The averaged copy of `net` that training keeps (step.ema_update moves it), frozen and in eval mode; None when
    `decay` is 0 (no average kept)."""
    return copy.deepcopy(net).eval().requires_grad_(False) if decay else None


def build_models(cfg: Config, data: datasets.Dataset, device: torch.device):
    """G, D and the averaged G (None without ema_decay) on the device, in NHWC layout when asked."""
    G, D = models.build(cfg, data.shape)
    G.to(device), D.to(device)
    if cfg.channels_last and registry.MODELS[cfg.model].feature_maps:
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = averaged_copy(G, cfg.ema_decay)
    return G, D, G_ema


def fixed_inputs(cfg: Config, data: datasets.Dataset, G, D, device):
    """The noise of the sample grids (labels cycle through the classes, one column per class), and virtual batch
    norm's reference batches, set into G and D. Drawn from their own generator, so they do not depend on the
    training RNG."""
    fixed = torch.Generator().manual_seed(cfg.seed)
    n = cfg.eval_n if data.is_points else cfg.grid_n
    fixed_z = sample_z(n, cfg.z_dim, cfg.prior, fixed).to(device)
    fixed_y = (torch.arange(n) % cfg.c_dim).to(device) if cfg.c_dim else None
    ref_idx = torch.randperm(len(data), generator=fixed)[: cfg.vbn_ref_size].to(device)
    ref_y = data.y[ref_idx] if cfg.c_dim else None
    G.set_reference(sample_z(cfg.vbn_ref_size, cfg.z_dim, cfg.prior, fixed).to(device), ref_y)
    D.set_reference(data.batch(ref_idx), ref_y)
    return fixed_z, fixed_y


def preview_data(cfg: Config, out: Path, force: bool = False) -> str:
    """`gankit data`: the data set read as training on cfg would read it (the loaders log what they read, skipped
    and converted), and its first grid_n images as the model is shown them written to `out` (a scatter plot of
    2-D points), without training. Returns a line that sums it up."""
    out = Path(out)
    if registry.dataset(cfg.data).sequences:
        raise UserError(f"data: {cfg.data} holds sequences of frames, which `gankit data` does not draw; a run of "
                        "task predict draws them in its samples/ folder")
    if out.suffix.lower() != ".png":
        raise UserError(f"data: --out must be a FILE.png, got {out}")
    outputs.check_new("data", out, force=force)
    data = load_data(cfg)
    cfg = resolve(cfg, data)
    outputs.out_folder("data", out.parent)
    if data.is_points:
        outputs.write_atomic(out, lambda tmp: viz.save_scatter(data.x[: cfg.eval_n].cpu(), tmp, data.modes))
    else:
        x = Draw(data, 1, cfg.seed, distributed.Context(), "cpu", cfg.xflip).preview(cfg.grid_n)  # (n, C, H, W)
        outputs.write_atomic(out, lambda tmp: viz.save_grid(x, tmp))
    shape = "2-D points" if data.is_points else f"{cfg.channels} x {cfg.img_size} x {cfg.img_size} images"
    names = ", ".join(data.class_names[:5]) + (", ..." if data.num_classes > 5 else "")
    classes = f"{data.num_classes} classes ({names})" if data.num_classes else "no classes"
    shown = f"the first {min(cfg.grid_n, 2 * len(data) if cfg.xflip else len(data))} as the model is shown them"
    return (f"{cfg.data}: {len(data):,} training examples{' (x2 mirrored: xflip)' if cfg.xflip else ''}, {shape}, "
            f"{classes}, cond {cfg.cond}; {out}: {'a scatter plot' if data.is_points else shown}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # seed + rank may pass NumPy's 32-bit limit under torchrun
    torch.manual_seed(seed)


@contextlib.contextmanager
def memory_errors(doing: str):
    """A failed allocation becomes one line that says what to shrink."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise UserError(f"out of memory while {doing} ({type(e).__name__}); lower batch_size, g_width/d_width, "
                        "img_size or z_dim") from None
    except RuntimeError as e:
        text = str(e)
        if "allocate" in text or "out of memory" in text:
            raise UserError(f"out of memory while {doing} ({text.splitlines()[0][:120]}); lower batch_size, "
                            "g_width/d_width, img_size or z_dim") from None
        raise
