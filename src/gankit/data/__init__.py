"""One loader interface for every data set: `load(...)` returns a `Dataset` held as one tensor, or, for a folder or
tar shards larger than the memory budget (or with stream: on), a `stream.StreamedDataset` that decodes batches in
DataLoader workers.

Images are stored as uint8 (N, C, H, W), as image files hold them (4x less memory than float32), and each batch is
scaled to [-1, 1] (G ends in tanh) when it is drawn; 2-D mixtures are (N, 2) float points. A data set that fits in
memory is moved to the training device once and indexed there, with no DataLoader. `stream.Draw` draws the batches
of either kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gankit.errors import UserError


@dataclass
class Dataset:
    name: str
    x: torch.Tensor                      # (N, C, H, W) uint8 images, or (N, 2) float points
    y: torch.Tensor | None = None        # (N,) int64 class labels, when the data set has them
    class_names: list[str] = field(default_factory=list)
    modes: torch.Tensor | None = None    # 2-D mixtures only: true mode centres (K, 2), used by metrics only
    sigma: float = 0.0                   # 2-D mixtures only: std of each mode

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_points(self) -> bool:
        return self.x.dim() == 2

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The examples at `idx` (all when None) as float: images scaled to [-1, 1], points as they are."""
        x = self.x if idx is None else self.x[idx]
        if x.dtype == torch.uint8:
            return x.float().div_(127.5).sub_(1.0)
        return x

    def floats(self) -> torch.Tensor:
        """The whole data set as float on the CPU (images in [-1, 1]): what the metrics compare samples with."""
        return self.batch().cpu() if self.x.dtype == torch.uint8 else self.x.detach().cpu()

    def for_metrics(self, n: int) -> "Dataset":
        """The real data that metrics compare n samples with: all of it (a streamed set gives a fixed subset)."""
        return self

    def subset(self, idx: torch.Tensor) -> "Dataset":
        """The examples at `idx`, with the same class names."""
        idx = idx.to(self.x.device)
        return Dataset(self.name, self.x[idx], None if self.y is None else self.y[idx], list(self.class_names),
                       self.modes, self.sigma)

    def to(self, device) -> "Dataset":
        self.x = self.x.to(device)
        self.y = None if self.y is None else self.y.to(device)
        return self


def holdout_indices(n: int, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) indices of a data set of n examples, with `holdout` examples held out.

    The held-out examples are the first of the metrics classifier's own held-out part (one fixed split of the real
    data), so that neither a model trained with `holdout` nor the classifier that scores its results has seen them.
    """
    from gankit.metrics.classifier import split_indices  # the data's one fixed split lives with the classifier

    train, held = split_indices(n)
    if not 0 <= holdout <= len(held):
        raise UserError(f"holdout: {holdout} is more than the {len(held)} examples the metrics classifier holds out "
                        f"of these {n}; use at most {len(held)}")
    return torch.cat([train, held[holdout:]]), held[:holdout]


def load(name: str, data_dir: str = "data", img_size: int = 32, channels: int = 0, n_points: int = 50_000,
         resize: str = "crop", stream: str = "off", memory_budget_gb: float = 4.0, workers: int = 0,
         background: tuple[int, int, int] = (255, 255, 255)):
    """Load a data set by name: digits, mnist, fashion-mnist, cifar10, stacked-mnist, ring, grid, fake, folder:PATH
    or shards:PATH.
    resize, stream, memory_budget_gb and workers concern folders and shards (data/folder.py, data/stream.py);
    `background` is the colour that transparent pixels of their images are composited onto."""
    from gankit.data import images, toy

    if name in toy.MIXTURES:
        return toy.load(name, n_points)
    if name.startswith("folder:"):
        return images.load_folder(name[len("folder:"):], img_size, channels, resize=resize, stream=stream,
                                  memory_budget_gb=memory_budget_gb, workers=workers, background=background)
    if name.startswith("shards:"):
        from gankit.data import shards

        return shards.load(name[len("shards:"):], img_size, channels, resize=resize, stream=stream,
                           memory_budget_gb=memory_budget_gb, workers=workers, background=background)
    if name == "digits":
        return images.load_digits(img_size, channels)
    if name == "stacked-mnist":
        return images.load_stacked_mnist(data_dir, img_size, n_points)
    if name == "fake":
        return images.load_fake(img_size, channels, n_points)
    if name in images.TORCHVISION_SETS:
        return images.load_torchvision(name, data_dir, img_size, channels)
    raise UserError(f"data: unknown data set {name!r}; use digits, mnist, fashion-mnist, cifar10, stacked-mnist, "
                    "ring, grid, fake, folder:PATH or shards:PATH")


def from_config(cfg) -> "Dataset":
    """The data set a config names (a Config, or a saved config dict of any gankit version), read as it says."""
    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
    from gankit.config import background_rgb

    return load(get("data", "digits"), get("data_dir", "data"), get("img_size", 32), get("channels", 0),
                get("n_points", 50_000), resize=get("resize", "crop"), stream=get("stream", "auto"),
                memory_budget_gb=get("memory_budget_gb", 4.0), workers=get("data_workers", 0),
                background=background_rgb(get("background", "white")))
