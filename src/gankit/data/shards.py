"""Tar shards in WebDataset's layout (data: shards:PATH). A sample is the tar members that share a key: the image
(`000123.png`, `.jpg`, ...) and, optionally, its class index as text (`000123.cls`); a `classes.txt` beside the
shards names the classes, one per line.

PATH is a folder of *.tar files, one .tar file, or a brace pattern such as `data/train-{000000..000099}.tar`
(webdataset's expansion). webdataset's reader goes through a tar front to back; training here needs random access
(a global shuffle, an exact position on resume, each torchrun process its own slice), so the members' offsets are
read once from the tar headers (Python's tarfile) and each image is then read at its offset. Shards must therefore be
plain, uncompressed tar files, as webdataset's writers make them. `gankit shards FOLDER --out DIR` packs a folder of
images with webdataset's ShardWriter.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import numpy as np

from gankit.data.folder import check, list_files
from gankit.data.stream import ImageSource, hold_or_stream
from gankit.errors import UserError

log = logging.getLogger("gankit")

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "bmp", "ppm", "pgm", "gif", "tif", "tiff")
CLASSES_FILE = "classes.txt"


def list_shards(spec: str) -> list[Path]:
    """The tar files that `spec` names: a folder (its *.tar, sorted), a file, or a brace pattern."""
    from webdataset.shardlists import expand_urls

    path = Path(spec).expanduser()
    if path.is_dir():
        paths = sorted(path.glob("*.tar"))
        if not paths:
            raise UserError(f"data: no .tar shards in {path}")
        return paths
    paths = [Path(p).expanduser() for p in expand_urls(str(spec))]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"data: shard {missing[0]} does not exist" + (f" (and {len(missing) - 1} more)"
                                                                       if len(missing) > 1 else ""))
    return paths


class ShardIndex:
    """Where each sample's image lies: shard number, byte offset and size (numpy arrays, N entries)."""

    def __init__(self, paths: list[Path], shard: np.ndarray, offset: np.ndarray, size: np.ndarray):
        self.paths, self.shard, self.offset, self.size = [str(p) for p in paths], shard, offset, size
        self._fds: dict[int, int] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.shard)

    def __getstate__(self):  # open files stay with the process that opened them
        return {**self.__dict__, "_fds": {}, "_pid": None}

    def open(self, i: int) -> io.BytesIO:
        """Sample i's image bytes, as a file object for PIL."""
        if self._pid != os.getpid():
            self._fds, self._pid = {}, os.getpid()
        s = int(self.shard[i])
        if s not in self._fds:
            if len(self._fds) >= 256:  # bound the open files of a worker over thousands of shards
                os.close(self._fds.pop(next(iter(self._fds))))
            self._fds[s] = os.open(self.paths[s], os.O_RDONLY)
        data = os.pread(self._fds[s], int(self.size[i]), int(self.offset[i]))
        if len(data) != int(self.size[i]):
            raise OSError(f"{self.paths[s]} is shorter than its index says (truncated?)")
        return io.BytesIO(data)

    def describe(self, i: int) -> str:
        s = int(self.shard[i])
        return f"sample {i - int(np.searchsorted(self.shard, s))} of {self.paths[s]}"


def index(spec: str) -> tuple[ShardIndex, list[int] | None, list[str]]:
    """Read the tar headers of every shard: the ShardIndex, the labels (when the samples carry .cls) and the class
    names (classes.txt beside the shards, else "0", "1", ...)."""
    from webdataset.tariterators import base_plus_ext

    paths = list_shards(spec)
    shard, offset, size, labels, without_image = [], [], [], [], 0
    for s, path in enumerate(paths):
        try:
            tar = tarfile.open(path, "r:")  # "r:": plain tar only; a compressed one cannot be read at an offset
        except (tarfile.TarError, OSError) as e:
            raise UserError(f"data: {path} is not a plain tar file ({e}); shards must be uncompressed .tar") from None
        with tar:
            key, sample = None, {}
            for m in list(tar) + [None]:                      # None: flush the last sample
                k, ext = base_plus_ext(m.name) if m is not None and m.isfile() else (None, None)
                if m is not None and k is None:
                    continue
                if k != key and sample:
                    if "image" in sample:
                        shard.append(s), offset.append(sample["image"][0]), size.append(sample["image"][1])
                        labels.append(sample.get("cls"))
                    else:
                        without_image += 1
                    sample = {}
                key = k
                if m is None:
                    break
                ext = ext.lower()
                if ext in IMAGE_EXTS and "image" not in sample:
                    sample["image"] = (m.offset_data, m.size)
                elif ext == "cls":
                    sample["cls"] = _class_index(tar.extractfile(m).read(), path, m.name)
    if without_image:
        log.warning(f"data: {without_image} sample(s) in {spec} have no image ({', '.join(IMAGE_EXTS)}); skipped")
    if not shard:
        raise UserError(f"data: no images in the shards of {spec}")
    has = [label is not None for label in labels]
    if any(has) and not all(has):
        raise UserError(f"data: {has.count(False)} of {len(has)} samples in {spec} have no .cls label; label all "
                        "or none")
    classes: list[str] = []
    if all(has):
        names = paths[0].parent / CLASSES_FILE
        count = max(labels) + 1
        classes = names.read_text().split("\n")[:count] if names.is_file() else [str(i) for i in range(count)]
        if len(classes) < count:
            raise UserError(f"data: {names} names {len(classes)} classes, but a .cls label is {count - 1}")
    idx = ShardIndex(paths, np.asarray(shard, np.int32), np.asarray(offset, np.int64), np.asarray(size, np.int64))
    return idx, (labels if all(has) else None), classes


def _class_index(raw: bytes, path: Path, member: str) -> int:
    try:
        value = int(raw.decode().strip())
    except ValueError:
        raise UserError(f"data: {member} in {path} is not a class index ({raw[:20]!r})") from None
    if value < 0:
        raise UserError(f"data: {member} in {path} is a negative class index")
    return value


def load(spec: str, img_size: int, channels: int, resize: str = "crop", stream: str = "off",
         memory_budget_gb: float = 4.0, workers: int = 0, background: tuple[int, int, int] = (255, 255, 255)):
    """The shards as a Dataset in memory, or streamed when `stream` says so (as stream.hold_or_stream decides for a
    folder too)."""
    shards, labels, classes = index(spec)
    source = ImageSource(shards=shards, mode="L" if channels == 1 else "RGB", size=img_size, policy=check(resize),
                         background=background)
    return hold_or_stream(f"shards:{spec}", spec, source, labels, classes, stream, memory_budget_gb, workers)


def write_shards(folder: str | Path, out: str | Path, per_shard: int = 1000) -> list[Path]:
    """Pack every image under `folder` (as data: folder: lists them, labels from top-level sub-folders) into
    out/shard-NNNNNN.tar with webdataset's ShardWriter: the files' own bytes, keyed by number, with .cls labels and
    out/classes.txt for a labelled folder. Refuses an `out` that already holds shards."""
    import webdataset as wds

    root, out = Path(folder).expanduser(), Path(out).expanduser()
    files, labels, classes = list_files(root)
    taken = sorted(out.glob("*.tar")) + ([out / CLASSES_FILE] if (out / CLASSES_FILE).exists() else [])
    if taken:
        raise UserError(f"shards: {taken[0]} exists; choose an empty --out folder (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for i, f in enumerate(files):
            sample = {"__key__": f"{i:08d}", Path(f).suffix.lower().lstrip("."): Path(f).read_bytes()}
            if labels is not None:
                sample["cls"] = str(labels[i])
            sink.write(sample)
    if classes:
        (out / CLASSES_FILE).write_text("\n".join(classes) + "\n")
    return sorted(out.glob("shard-*.tar"))
