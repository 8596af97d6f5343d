"""The in-memory data set (`Dataset`: one tensor of examples, and their labels) and the data's one fixed split.

The split (`split_indices`: 80 % training, 20 % held out, by a seed of its own) belongs to the data: the metrics
classifier learns on its training part and reports its accuracy on the held-out part, and `holdout_indices` takes
the examples a run holds out from that same held-out part.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gankit.errors import UserError

SPLIT_SEED = 20_190_607  # the train / held-out split of the real data never depends on the run's seed
HELD_OUT = 0.2
# A data set's fingerprint hashes at most this many bytes of its examples (evenly spaced ones beyond): all of MNIST,
# every third CIFAR-10 image; SHA-256 reads about 1 GB/s, so 64 MB is some 60 ms.
FINGERPRINT_BYTES = 64 << 20


@dataclass
class Dataset:
    name: str
    x: torch.Tensor                      # (N, C, H, W) uint8 images, or (N, 2) float points
    y: torch.Tensor | None = None        # (N,) int64 class labels, when the data set has them
    class_names: list[str] = field(default_factory=list)
    modes: torch.Tensor | None = None    # 2-D mixtures only: true mode centres (K, 2), used by metrics only
    sigma: float = 0.0                   # 2-D mixtures only: std of each mode
    files: list | None = None            # read from files (a folder, shards): their ImageSource.files_digest()

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

    def fingerprint(self) -> dict:
        """What a checkpoint remembers of this data, to refuse a resume on data that changed: the number of examples,
        a SHA-256 of their values and labels (of evenly spaced examples, FINGERPRINT_BYTES in all, for a larger set),
        and the digest of the files they were read from, if any (which a run that switches to streaming compares).
        Reads the examples where they are (a sample of a set on the GPU is copied); draws no random number.
        Comparisons: checkpoint.data_change."""
        every = max(1, math.ceil(self.x.nbytes / FINGERPRINT_BYTES))
        h = hashlib.sha256(f"{tuple(self.x.shape)} {self.x.dtype} every {every}\n".encode())
        h.update(self.x[::every].contiguous().cpu().numpy().tobytes())
        if self.y is not None:
            h.update(self.y.cpu().numpy().tobytes())
        return {"examples": len(self), "contents": h.hexdigest(), "files": self.files}

    def subset(self, idx: torch.Tensor) -> "Dataset":
        """The examples at `idx`, with the same class names."""
        idx = idx.to(self.x.device)
        return Dataset(self.name, self.x[idx], None if self.y is None else self.y[idx], list(self.class_names),
                       self.modes, self.sigma, self.files)

    def to(self, device) -> "Dataset":
        self.x = self.x.to(device)
        self.y = None if self.y is None else self.y.to(device)
        return self


def split_indices(n: int, held_out: float = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed permutation of range(n) cut into (train, held_out) index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_held = max(1, round(n * held_out))
    return perm[n_held:], perm[:n_held]


def holdout_indices(n: int, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) indices of a data set of n examples, with `holdout` examples held out.

    The held-out examples are the first of the metrics classifier's own held-out part (one fixed split of the real
    data), so that neither a model trained with `holdout` nor the classifier that scores its results has seen them.
    """
    train, held = split_indices(n)
    if not 0 <= holdout <= len(held):
        raise UserError(f"holdout: {holdout} is more than the {len(held)} examples the metrics classifier holds out "
                        f"of these {n}; use at most {len(held)}")
    return torch.cat([train, held[holdout:]]), held[:holdout]


def labelled_files(root: Path, extensions, what: str, usage: str) -> tuple[list[str], list[int] | None, list[str]]:
    """The files under root with one of `extensions`, sorted; their labels and the class names when every file sits
    in one of >= 2 top-level sub-folders (else None and []). `what` names the files in messages ("images"), `usage`
    says what the data field needs ("folder:PATH needs a folder of images")."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data: folder {root} does not exist ({usage})")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise UserError(f"data: no {what} under {root} (looked for {', '.join(extensions)})")
    rel = [p.relative_to(root).parts for p in files]
    classes = sorted({parts[0] for parts in rel if len(parts) > 1})
    labelled = len(classes) >= 2 and all(len(parts) > 1 for parts in rel)
    index = {c: i for i, c in enumerate(classes)}
    return [str(p) for p in files], ([index[p[0]] for p in rel] if labelled else None), (classes if labelled else [])
