"""What training and inference both need before the first step: the device, the data set read once and split, the
config filled in from the data, the seeds, the GAN's models and their fixed inputs. No loop lives here, so the
commands that only use a trained model (sample, inpaint, upscale, classify) import this and never the training code.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import random

import numpy as np
import torch

from gankit import data as datasets, distributed, metrics, models, registry
from gankit.config import Config
from gankit.errors import ConfigError, UserError
from gankit.latent import sample_z


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
    data = datasets.from_config(cfg)
    if not cfg.holdout:
        return data, data, None
    if not isinstance(data, datasets.Dataset):
        raise ConfigError("holdout", "holds examples out of a data set in memory; use it with stream off")
    train_idx, held_idx = datasets.holdout_indices(len(data), cfg.holdout)
    return data, data.subset(train_idx), data.subset(held_idx)


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
    if cfg.cond != "none":
        if data.num_classes < 2:
            raise ConfigError("cond", f"data set {cfg.data} has no class labels to condition on")
        if cfg.c_dim and cfg.c_dim != data.num_classes:
            raise ConfigError("c_dim", f"data set {cfg.data} has {data.num_classes} classes, not {cfg.c_dim}")
        changes["c_dim"] = data.num_classes
    check_batch_size(cfg, data, world_size)
    if "virtual_batch" in (cfg.g_norm, cfg.d_norm) and cfg.vbn_ref_size > len(data):
        raise ConfigError("vbn_ref_size", f"{cfg.vbn_ref_size} exceeds the {len(data)} examples of {cfg.data}")
    if cfg.eval_metrics:
        metrics.check_names(metric_names(cfg.eval_metrics), "points" if data.is_points else "image",
                            cfg.cond != "none", "eval_metrics", data.name)
    return dataclasses.replace(cfg, **changes)


def check_batch_size(cfg: Config, data, world_size: int = 1) -> None:
    """A global batch that the training data can fill (every task's set-up checks it before any folder exists)."""
    if cfg.batch_size * world_size > len(data):
        raise ConfigError("batch_size", f"{cfg.batch_size} x {world_size} process(es) exceeds the {len(data)} "
                                        f"training examples of {cfg.data}")


def metric_names(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


def build_models(cfg: Config, data: datasets.Dataset, device: torch.device):
    """G, D and the averaged G (None without ema_decay) on the device, in NHWC layout when asked."""
    G, D = models.build(cfg, data.shape)
    G.to(device), D.to(device)
    if cfg.channels_last and registry.MODELS[cfg.model].feature_maps:
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay else None
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
