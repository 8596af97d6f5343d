"""Drawing real minibatches, from memory or streamed from disk.

`Draw(k)` is global batch number k of an endless sequence of epochs (`Batches`: each epoch a permutation seeded by
(seed, epoch), each torchrun process taking its own slice of every global batch). Where training stands in the data is
that one counter, which the checkpoint saves; so a resumed run draws exactly the batches the uninterrupted run would,
and a streamed data set gives the very batches that the same set held in memory gives.

Holding or streaming (`hold_or_stream`, for folders and tar shards alike): a set is decoded once into memory, or,
with stream: on (or auto past memory_budget_gb), streamed: a map-style `ImageSource` decodes image i (a file, or a
member of a tar shard) and a DataLoader's worker processes decode the batches that `Batches` names, a few ahead of
training, into pinned memory when training runs on a GPU. Each process decodes only its own slice. Random access keeps
the shuffles global and the position exact; tar shards are read by member offset (data/shards.py), so they need not
be read front to back.

xflip (stylegan2-ada's --mirror): the index space is doubled; index i >= N is image i - N mirrored left-right, so a
flip is a function of the index drawn: seeded, and exact on resume.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from gankit import distributed
from gankit.data.dataset import Dataset
from gankit.data.decode import UNREADABLE, SkippedImage
from gankit.data.folder import Summary, read_image
from gankit.errors import UserError

log = logging.getLogger("gankit")

SUMMARY_SAMPLE = 256      # files decoded up front to summarise a streamed set's sizes
METRICS_SUBSET = 10_000   # real images (or 2 x eval_n when more) that metrics compare a streamed set's samples with
PREFETCH = 4              # batches decoded ahead, per worker
PARALLEL_FROM = 2000      # files: below this, decoding in this process is faster than starting worker processes


def choose(stream: str, nbytes: int, budget_gb: float, name: str) -> bool:
    """Whether to stream: `on`, or `auto` when the set as uint8 would exceed the budget."""
    if stream == "on":
        return True
    if stream == "auto" and nbytes > budget_gb * 1e9:
        log.info(f"data: {name} is {nbytes / 1e9:.3g} GB as uint8, more than memory_budget_gb {budget_gb:g}: "
                 f"streaming it from disk (stream: off holds it in memory all the same)")
        return True
    return False


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images uint8 [0, 255] -> float [-1, 1] (G ends in tanh); points pass through."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


class ImageSource(torch.utils.data.Dataset):
    """Image i of a folder (`files`) or of tar shards (`shards`, a ShardIndex), decoded and resized as training sees
    it: uint8 (C, size, size). Picklable and without open files until used, so DataLoader workers can take it."""

    def __init__(self, mode: str, size: int, policy: str, files: list[str] | None = None, shards=None,
                 background: tuple[int, int, int] = (255, 255, 255)):
        self.mode, self.size, self.policy, self.files, self.shards = mode, size, policy, files, shards
        self.background = tuple(background)
        self.shape = (1 if mode == "L" else 3, size, size)
        self.nbytes_each = math.prod(self.shape)
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.shards)

    def read(self, i: int):
        """Image i, its original (w, h) and what decoding did (a Counter); raises decode.UNREADABLE errors."""
        return read_image(self.files[i] if self.files is not None else self.shards.open(i), self.mode, self.size,
                          self.policy, self.background)

    def try_read(self, i: int):
        """(image, (w, h), notes, None), or (None, None, None, why) for a file that cannot be used; `why` is empty
        for a plain decoding error and names the file and the reason for one gankit refuses (decode.SkippedImage)."""
        try:
            return (*self.read(i), None)
        except SkippedImage as e:
            return None, None, None, f"{Path(self.describe(i)).name}: {e}"
        except UNREADABLE:
            return None, None, None, ""

    def __getitems__(self, idx: list[int]) -> torch.Tensor:
        """(B, C, size, size) uint8. A file that cannot be read (it was readable when listed, or a streamed set was
        never read whole) is replaced by the next readable index, the same on every run, with a warning."""
        out = torch.empty((len(idx), *self.shape), dtype=torch.uint8)
        for j, i in enumerate(idx):
            for k in range(len(self)):
                image = self.try_read((i + k) % len(self))[0]
                if image is not None:
                    break
                if (i + k) % len(self) not in self._warned:
                    self._warned.add((i + k) % len(self))
                    bad = (i + k) % len(self)
                    log.warning(f"data: cannot read image {bad} ({self.describe(bad)}); using the next one in its "
                                "place")
            else:
                raise UserError("data: no image of the streamed set can be read")
            out[j] = image
        return out

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.__getitems__([i])[0]

    def describe(self, i: int) -> str:
        return self.files[i] if self.files is not None else self.shards.describe(i)

    def files_digest(self) -> list:
        """[the number of images, a SHA-256 of their files' names (relative to the folder that holds them all),
        sizes and modification times]: what a checkpoint remembers of the files a set was read from (fingerprint).
        No file is opened, one stat() each: 10,000 files take a few tens of milliseconds."""
        paths = [os.path.abspath(p) for p in (self.files if self.files is not None else map(str, self.shards.paths))]
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
        h = hashlib.sha256(f"{len(self)} images\n".encode())
        for p in paths:
            try:
                st = os.stat(p)
                stamp = f"{st.st_size} {st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            h.update(f"{p[len(root):]}\0{stamp}\n".encode(errors="surrogateescape"))
        return [len(self), h.hexdigest()]

    def read_all(self, workers: int):
        """(i, image or None, (w, h) or None) for every i in order, decoded by `workers` processes (0: here)."""
        loader = DataLoader(_Tried(self), batch_size=256, num_workers=workers, collate_fn=_as_list,
                            prefetch_factor=PREFETCH if workers else None, generator=_own_rng(),
                            worker_init_fn=_worker_start)
        for chunk in loader:
            yield from chunk


class _Tried(torch.utils.data.Dataset):
    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        return (i, *self.source.try_read(i))


def _as_list(items):
    return items


def _first(items):  # __getitems__ already returns the stacked batch
    return items


def _worker_start(worker_id: int) -> None:
    """A DataLoader worker's first act (after torch's own signal handlers): SIGTERM ignored. A scheduler's SIGTERM
    often reaches every process of the job (systemd's control group, Slurm's job step, kill -TERM -PGID); a worker
    it killed made the trainer's DataLoader raise "worker is killed by signal" while the trainer was saving its last
    clean state, and the run lost it. The trainer alone answers SIGTERM (session.py); its workers end with it, told
    by their DataLoader, or by its watchdog once the trainer is gone (a worker stuck in a read is not terminated by
    the DataLoader's SIGTERM then: it ends when the read does)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _own_rng() -> torch.Generator:
    """A DataLoader draws its workers' base seed from the global RNG unless given a generator; that draw would
    shift training's noise (and differ between a resumed run and an uninterrupted one). Decoding draws nothing."""
    return torch.Generator().manual_seed(0)


@dataclass
class StreamedDataset:
    """A Dataset whose images stay on disk: the labels are in memory, images are decoded when drawn."""
    name: str
    source: ImageSource
    y: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    workers: int = 0                      # DataLoader workers per process; 0 = auto (Draw)
    modes: None = None
    sigma: float = 0.0
    _subset: Dataset | None = None

    @classmethod
    def create(cls, name: str, source: ImageSource, labels: list[int] | None, classes: list[str], workers: int):
        summary = Summary(source.size, source.policy)
        step = max(1, len(source) // SUMMARY_SAMPLE)
        for i in range(0, len(source), step)[:SUMMARY_SAMPLE]:
            summary.add(source.try_read(i)[1])
        if not summary.read:
            raise UserError(f"data: none of the {summary.skipped} images sampled from {name} could be read")
        log.info(f"data: streaming {name}: {len(source):,} images, decoded in DataLoader workers as batches are drawn")
        log.info(summary.line(name, classes, labels, sampled=True))
        y = torch.tensor(labels, dtype=torch.long) if labels is not None else None
        return cls(name, source, y, classes, workers)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_points(self) -> bool:
        return False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    def __len__(self) -> int:
        return len(self.source)

    def fingerprint(self) -> dict:
        """What a checkpoint remembers of this data, to refuse a resume on data that changed: its number of images
        and a digest of its files (their contents are not read; a file rewritten with other bytes has another size
        or modification time). Comparisons: checkpoint.data_change."""
        return {"examples": len(self), "contents": None, "files": self.source.files_digest()}

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """A few examples decoded here (VBN's reference batch, previews), as float in [-1, 1] on idx's device."""
        return to_float(self.source.__getitems__(idx.tolist())).to(idx.device)

    def to(self, device) -> "StreamedDataset":
        self.y = None if self.y is None else self.y.to(device)
        return self

    def for_metrics(self, n: int) -> Dataset:
        """What metrics compare samples with: a fixed random subset, max(2 n, METRICS_SUBSET) images (all when
        fewer), decoded once and held in memory."""
        m = min(len(self), max(2 * n, METRICS_SUBSET))
        if self._subset is None or len(self._subset) != m:
            idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:m].sort().values
            loader = DataLoader(self.source, batch_size=256, sampler=idx.tolist(), collate_fn=_first,
                                num_workers=min(8, os.cpu_count() or 1), generator=_own_rng(),
                                worker_init_fn=_worker_start)
            x = torch.cat(list(loader))
            y = None if self.y is None else self.y.cpu()[idx]
            self._subset = Dataset(f"{self.name}[{m} of {len(self)}]", x, y, list(self.class_names))
        return self._subset

    def floats(self) -> torch.Tensor:
        raise UserError("data: a streamed data set is not held in memory; metrics use for_metrics(n)")


def hold_or_stream(name: str, where: str, source, labels: list[int] | None, classes: list[str], stream: str,
                   memory_budget_gb: float, workers: int):
    """A StreamedDataset when `stream` says so; else every image decoded (in parallel for large sets) into one
    uint8 tensor, unreadable ones skipped and counted, and one line of summary logged."""
    if choose(stream, len(source) * source.nbytes_each, memory_budget_gb, name):
        return StreamedDataset.create(name, source, labels, classes, workers)
    summary = Summary(source.size, source.policy)
    x = torch.empty((len(source), *source.shape), dtype=torch.uint8)  # filled in place: no second copy of the set
    keep = torch.zeros(len(source), dtype=torch.bool)
    notes, refused = Counter(), []
    for i, image, wh, what, why in source.read_all(min(8, os.cpu_count() or 1) if len(source) >= PARALLEL_FROM
                                                    else 0):
        if why:                      # a file gankit refuses, by name and reason (not counted as unreadable)
            refused.append(why)
            continue
        summary.add(wh, source.describe(i))
        if image is not None:
            x[i], keep[i] = image, True
            notes.update(what)
    if not summary.read:             # the error says it; no warning line before it
        odd = f"; {refused[0]}" if refused else ""
        raise UserError(f"data: none of the {len(source)} image files under {where} could be read{odd}")
    if summary.skipped:
        log.warning(summary.skipped_line(where, len(source)))
    if refused:
        log.warning(f"data: skipped {len(refused)} image file(s) of {len(source)} under {where}: "
                    + "; ".join(refused[:3]) + (f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""))
    described = {"alpha": f"with transparency, composited onto {source.background}",
                 "animated": "animated (first frame used)", "cmyk": "CMYK, converted to RGB",
                 "16-bit": "16-bit, scaled to 8 bits"}
    if notes:
        log.info("data: " + "; ".join(f"{n} {described[k]}" for k, n in notes.items()))
    if not keep.all():
        x = x[keep]
        labels = [label for label, k in zip(labels, keep.tolist()) if k] if labels is not None else None
    log.info(summary.line(where, classes, labels))
    y = torch.tensor(labels, dtype=torch.long) if labels is not None else None
    return Dataset(name, x, y, classes, files=source.files_digest())


class Batches:
    """Global batch number k of an endless sequence of epochs, as indices into a set of n examples.

    Each epoch is a permutation seeded by (seed, epoch), so where training stands in the data is given by one
    counter, which the checkpoint saves; each rank takes its own slice of every global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, ctx: distributed.Context, device: torch.device | str):
        self.n, self.batch_size, self.seed, self.ctx, self.device = n, batch_size, seed, ctx, device
        self.per_epoch = n // (batch_size * ctx.world_size)
        self._epoch, self._perm = -1, None

    def __call__(self, k: int) -> torch.Tensor:
        epoch, i = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen).to(self.device)
        start = (i * self.ctx.world_size + self.ctx.rank) * self.batch_size
        return self._perm[start: start + self.batch_size]


class _From(Sampler):
    """The DataLoader's batches: this process's indices of global batches k, k + 1, ... (real images, flips
    folded back), computed by a Batches of its own."""

    def __init__(self, batches: Batches, start: int, n: int):
        self.batches, self.start, self.n = batches, start, n

    def __iter__(self):
        k = self.start
        while True:
            yield (self.batches(k) % self.n).tolist()
            k += 1


def default_workers(world_size: int) -> int:
    """DataLoader workers per process: the cores left over once each process has one, at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // world_size - 1))


class Draw:
    """The real minibatches of one process: `draw(k)` -> (x float in [-1, 1] on the device, y or None).

    In memory the batch is indexed on the device; streamed, a DataLoader decodes batches k, k + 1, ... ahead (its
    iterator starts at the first k asked for, e.g. a resumed run's saved counter)."""

    def __init__(self, data, batch_size: int, seed: int, ctx: distributed.Context, device: torch.device,
                 xflip: bool = False):
        self.data, self.ctx, self.device, self.xflip = data, ctx, torch.device(device), xflip
        self.n = len(data)
        self.streamed = isinstance(data, StreamedDataset)
        size = 2 * self.n if xflip else self.n
        self.batches = Batches(size, batch_size, seed, ctx, "cpu" if self.streamed else self.device)
        self._args = (size, batch_size, seed, ctx)
        self._it, self._next = None, None

    def __call__(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self.batches(k)                              # (B,) in [0, N), or [0, 2N) with xflip
        x = self._streamed(k) if self.streamed else self.data.batch(idx % self.n)
        if self.xflip:
            flip = (idx >= self.n).to(x.device).view(-1, *[1] * (x.dim() - 1))
            x = torch.where(flip, x.flip(-1), x)           # (B, C, H, W): mirrored along the width
        y = None if self.data.y is None else self.data.y[(idx % self.n).to(self.data.y.device)]
        return to_float(x), y

    def _streamed(self, k: int) -> torch.Tensor:
        if self._it is None or k != self._next:
            workers = self.data.workers or default_workers(self.ctx.world_size)
            loader = DataLoader(self.data.source, batch_sampler=_From(Batches(*self._args, "cpu"), k, self.n),
                                num_workers=workers, collate_fn=_first, prefetch_factor=PREFETCH,
                                pin_memory=self.device.type == "cuda", generator=_own_rng(),
                                worker_init_fn=_worker_start)
            self._it, self._next = iter(loader), k
        self._next += 1
        return next(self._it).to(self.device, non_blocking=True)

    def preview(self, n: int) -> torch.Tensor:
        """The first n images of the first epoch (over all processes), as training sees them: float, on the CPU."""
        size = self.batches.n
        idx = torch.randperm(size, generator=torch.Generator().manual_seed(self.batches.seed * 1_000_003))[:n]
        src = idx % self.n
        x = (self.data.batch(src) if self.streamed else self.data.batch(src.to(self.data.x.device))).cpu()
        if self.xflip:
            x = torch.where((idx >= self.n).view(-1, 1, 1, 1), x.flip(-1), x)
        return x
