"""The data set's own classifier: a small CNN that gankit trains on the real training part the first time a metric
needs it, then keeps on disk. Its penultimate layer gives the features of FID, KID, precision/recall and density/
coverage for digit-like data; its logits give the Inception score and the class accuracy; the same recipe trained on
generated samples gives CAS (Ravuri & Vinyals 2019).

The real data is split once, by a fixed seed, into a training part (80 %) and a held-out part (20 %) (data/dataset.py's
split_indices): the classifier learns on the first and reports its accuracy on the second.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit import outputs
from gankit.outputs import sha256_file
# The data's one fixed split belongs to the data package; SPLIT_SEED stays importable from here because the shipped
# weights' records name it (benchmarks/ship_classifiers.py).
from gankit.data.dataset import SPLIT_SEED, split_indices  # noqa: F401
from gankit.errors import UserError

log = logging.getLogger("gankit")

RECIPE = "cnn-v2"        # part of the cache key: change it when the architecture or the recipe changes
MAX_SIZE = 32            # larger images are resized to 32 x 32: digits need no more, and CPU training stays fast


class SmallCNN(nn.Module):
    """Three conv blocks and a 128-d penultimate layer; any input size (inputs above 32 px are resized to 32).
    Width 24 and 4 epochs: 98.8 % held-out on MNIST (8k training images at 32 px) in about 35 s on one CPU core.

    input_size > 0 (the shipped classifiers: 32): every input is first resized to input_size x input_size, and RGB
    inputs of a grayscale classifier are averaged to one channel, so one set of weights scores a data set at any
    resolution a run trains it at."""

    def __init__(self, channels: int, num_classes: int, feat_dim: int = 128, width: int = 24, input_size: int = 0):
        super().__init__()
        self.channels, self.num_classes, self.feat_dim, self.width = channels, num_classes, feat_dim, width
        self.input_size = input_size
        w = width

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(channels, w), nn.MaxPool2d(2),        # (N, w, H/2, W/2)
            *block(w, 2 * w), nn.MaxPool2d(2),           # (N, 2w, H/4, W/4)
            *block(2 * w, 4 * w),                        # (N, 4w, H/4, W/4)
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),       # (N, 16w): a 2 x 2 pool keeps where the strokes are
        )
        # The features are the penultimate layer before its ReLU: no unit is ever constant there, so covariances
        # of the features have full rank once there are more samples than dimensions.
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * w, feat_dim))   # (N, feat_dim)
        self.fc = nn.Linear(feat_dim, num_classes)                               # (N, K)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 1 and x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        size = self.input_size or min(x.shape[-1], MAX_SIZE)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=x.shape[-1] > size, align_corners=False)
        return self.head(self.body(x))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))


def _shift(x: torch.Tensor, gen: torch.Generator, max_px: float = 2.0) -> torch.Tensor:
    """Random translations of up to max_px pixels per image (the only augmentation digits need); (N, C, H, W)."""
    n, h = x.shape[0], x.shape[-1]
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * max_px / h)          # in grid units, where 2 = full width
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = t
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def fit(x: torch.Tensor, y: torch.Tensor, num_classes: int, device="cpu", seed: int = 0,
        epochs: float = 4.0, batch_size: int = 128, label_smoothing: float = 0.05) -> SmallCNN:
    """Train a SmallCNN on (x (N, C, H, W) in [-1, 1], y (N,)). Uses its own RNG: the caller's global RNG state
    (a training run's, when evaluating mid-training) is left untouched."""
    device = torch.device(device)
    steps = max(150, math.ceil(epochs * len(x) / batch_size))  # small sets (digits) need more than 4 epochs
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = SmallCNN(x.shape[1], num_classes).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
        x, y = x.to(device), y.to(device)
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen).to(device)
            loss = F.cross_entropy(model(_shift(x[idx], gen)), y[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def predict(model: SmallCNN, x: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, feat_dim), logits (N, K)) on CPU, computed in batches on the model's device. NHWC and batches
    small enough for the cache: 5x faster than NCHW batches of 1000 on the CPU, the same numbers to 1e-5."""
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)
    feats, logits = [], []
    for chunk in x.split(batch_size):
        f = model.features(chunk.to(device).float().contiguous(memory_format=torch.channels_last))
        feats.append(f.cpu())
        logits.append(model.logits(f).cpu())
    return torch.cat(feats), torch.cat(logits)


def accuracy(model: SmallCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict(model, x)[1].argmax(1) == y.cpu()).double().mean().item()


# ------------------------------------------------------------------------------------------------------------------
# the real-data classifier, cached on disk


@dataclass
class Classifier:
    model: SmallCNN
    accuracy: float       # on the held-out part of the real data
    n_train: int
    n_held_out: int
    train_seconds: float  # how long its training took, the first time (the cache keeps it)
    path: Path
    shipped: bool = False  # the weights that ship with gankit (the same on every machine), not trained here

    @property
    def source(self) -> str:
        return f"shipped {self.path.stem}" if self.shipped else f"trained on this machine, cached in {self.path}"


# ------------------------------------------------------------------------------------------------------------------
# the classifiers that ship with gankit: trained once by benchmarks/ship_classifiers.py, so that every machine
# scores with the same weights and a figure in README can be checked anywhere

SHIPPED_DIR = Path(__file__).parent / "weights"
SHIPPED = {"digits": "digits-cnn-v2", "mnist": "mnist-cnn-v2"}   # data set name -> file stem
WEAK_ACCURACY = 0.90  # below this held-out accuracy, features-based metrics mean little


def shipped_classifier(name: str, device="cpu") -> Classifier | None:
    """The shipped classifier of data set `name`, checked against its recorded sha256; None if none ships."""
    import json

    from safetensors.torch import load_file

    stem = SHIPPED.get(name)
    if stem is None:
        return None
    weights, meta_path = SHIPPED_DIR / f"{stem}.safetensors", SHIPPED_DIR / f"{stem}.json"
    try:
        meta = json.loads(meta_path.read_text())
        digest = sha256_file(weights)
    except (OSError, ValueError) as e:
        raise UserError(f"metrics: the shipped {name} classifier is missing or unreadable ({e}); reinstall gankit")
    if digest != meta["sha256"]:
        raise UserError(f"metrics: {weights} does not match its checksum (sha256 {digest[:12]}..., expected "
                        f"{meta['sha256'][:12]}...); reinstall gankit")
    model = SmallCNN(meta["channels"], meta["num_classes"], meta["feat_dim"], meta["width"], meta["input_size"])
    model.load_state_dict(load_file(str(weights)))
    return Classifier(model.to(device).eval().requires_grad_(False), meta["held_out_accuracy"], meta["n_train"],
                      meta["n_held_out"], meta["train_seconds"], weights, shipped=True)


def cache_dir() -> Path:
    return Path(os.environ.get("GANKIT_CACHE", "~/.cache/gankit")).expanduser() / "classifiers"


def data_key(data) -> str:
    """name-img_size-channels-hash: different data never share a cache entry."""
    x = data.x.detach().cpu().contiguous()
    h = hashlib.sha256()
    h.update(RECIPE.encode())
    h.update(str(tuple(x.shape)).encode())
    h.update(x.numpy().tobytes())
    h.update(data.y.detach().cpu().numpy().tobytes())
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", data.name).strip("_")[-40:]
    return f"{name}-{x.shape[-1]}px-{x.shape[1]}ch-{h.hexdigest()[:16]}"


def real_classifier(data, device="cpu") -> Classifier:
    """The classifier of this data set: loaded from the cache, or trained on the training part and cached."""
    shipped = shipped_classifier(data.name, device)
    if shipped is not None:
        return shipped
    if data.y is None or data.num_classes < 2:
        raise UserError(f"metrics: {data.name} has no class labels to train its classifier on (is, class_acc, cas "
                        "and --features classifier need one); use --features inception with fid, kid, pr, dc")
    clf = _cached_classifier(data, device)
    if clf.accuracy < WEAK_ACCURACY:
        log.warning(f"metrics: WARNING: the {data.name} classifier reaches only {100 * clf.accuracy:.1f} % held-out "
                    f"accuracy (below {100 * WEAK_ACCURACY:.0f} %): FID, KID, precision/recall and density/coverage "
                    "in its features mean little; use more labelled images or --features inception")
    return clf


def _cached_classifier(data, device="cpu") -> Classifier:
    path = cache_dir() / f"{data_key(data)}.pt"
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = SmallCNN(state["channels"], state["num_classes"], state["feat_dim"], state["width"])
            model.load_state_dict(state["weights"])
            return Classifier(model.to(device).eval().requires_grad_(False), state["accuracy"], state["n_train"],
                              state["n_held_out"], state["train_seconds"], path)
        except (OSError, RuntimeError, KeyError) as e:
            log.warning(f"metrics: cached classifier {path} unreadable ({e}); training it again")
    train_idx, held_idx = split_indices(len(data))
    x, y = data.floats(), data.y.detach().cpu()
    log.info(f"metrics: training the {data.name} classifier on {len(train_idx)} real images (first use; cached in "
             f"{path.parent})")
    t0 = time.perf_counter()
    model = fit(x[train_idx], y[train_idx], data.num_classes, device)
    seconds = time.perf_counter() - t0
    acc = accuracy(model, x[held_idx], y[held_idx])
    log.info(f"metrics: {data.name} classifier: held-out accuracy {acc:.4f} after {seconds:.1f} s")
    state = {"weights": {k: v.cpu() for k, v in model.state_dict().items()}, "channels": model.channels,
             "num_classes": model.num_classes, "feat_dim": model.feat_dim, "width": model.width, "accuracy": acc,
             "n_train": len(train_idx), "n_held_out": len(held_idx), "train_seconds": seconds, "recipe": RECIPE}
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs.write_atomic(path, lambda tmp: torch.save(state, tmp))  # a concurrent reader sees the old or the new
    return Classifier(model, acc, len(train_idx), len(held_idx), seconds, path)
