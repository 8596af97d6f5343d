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
import re
import tarfile
from pathlib import Path

import numpy as np

from gankit import outputs
from gankit.data.folder import check, list_files
from gankit.data.stream import ImageSource, hold_or_stream
from gankit.errors import UserError

log = logging.getLogger("gankit")

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "bmp", "ppm", "pgm", "gif", "tif", "tiff")
CLASSES_FILE = "classes.txt"
MAX_SHARDS = 100_000    # shards one pattern may name: far more than any data set here, far fewer than a typo's
MAX_CLS_BYTES = 64      # a .cls member is a class index as text; anything longer is not one


def list_shards(spec: str) -> list[Path]:
    """The tar files that `spec` names: a folder (its *.tar, sorted), a file, or a brace pattern (webdataset's
    expansion: `::` between lists, ${VAR} from WDS_VAR), counted before it is expanded."""
    import braceexpand
    from webdataset.shardlists import envsubst

    if not str(spec).strip():
        raise UserError("data: shards: needs a folder of .tar files, a .tar file or a pattern (shards:PATH)")
    path = Path(spec).expanduser()
    if _is(path, "dir"):
        paths = sorted(p for p in path.glob("*.tar") if p.is_file())
        if not paths:
            raise UserError(f"data: no .tar shards in {path}")
        return paths
    if _is(path, "file"):  # a file is itself, braces in its name or not
        return [path]
    paths = []
    for url in str(spec).split("::"):
        url = envsubst(url)
        count = _expansion_bound(url)
        if count > MAX_SHARDS:
            raise UserError(f"data: the shard pattern {url} names more than {MAX_SHARDS:,} shards; check its "
                            "{FIRST..LAST} range")
        try:
            paths += [Path(p).expanduser() for p in braceexpand.braceexpand(url)]
        except Exception as e:  # noqa: BLE001: braceexpand's own errors (unbalanced braces) name the problem
            raise UserError(f"data: cannot expand the shard pattern {url} ({e})") from None
    seen: set[Path] = set()
    for p in paths:
        if p in seen:
            raise UserError(f"data: the shard pattern {spec} names {p} twice; each shard may be read once")
        seen.add(p)
    missing = [str(p) for p in paths if not _is(p, "file")]
    if missing and len(missing) == len(paths):
        hint = " (a pattern is {000000..000099}; * and ? are not expanded)" if any(c in str(spec) for c in "*?[") \
            else ""
        raise UserError(f"data: no shard that {spec} names exists (looked for {missing[0]}"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else "") + f"){hint}")
    if missing:
        raise UserError(f"data: shard {missing[0]} does not exist" + (f" (and {len(missing) - 1} more)"
                                                                       if len(missing) > 1 else ""))
    return paths


def _is(path: Path, kind: str) -> bool:
    """path.is_dir() / is_file(), False for a name the system cannot even look up (too long: a pattern, not a
    file)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError:
        return False


def _expansion_bound(pattern: str) -> int:
    """An upper bound on the names a brace pattern expands to, without expanding it (braceexpand builds a range
    as a list: {0..999999999} is a billion strings). Innermost groups first: a range counts its length, a list
    its items; the product of the groups bounds the expansion."""
    bound = 1
    group = re.compile(r"\{([^{}]*)\}")
    while (m := group.search(pattern)) is not None:
        body = m.group(1)
        numbers = re.fullmatch(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?", body)
        letters = re.fullmatch(r"(.)\.\.(.)(?:\.\.(-?\d+))?", body)
        if numbers and max(len(numbers.group(1)), len(numbers.group(2))) > 30:
            return MAX_SHARDS + 1                           # a range of 30-digit numbers is no list of files
        if numbers:
            bound *= abs(int(numbers.group(2)) - int(numbers.group(1))) + 1
        elif letters:
            bound *= abs(ord(letters.group(2)) - ord(letters.group(1))) + 1
        else:
            bound *= body.count(",") + 1
        pattern = pattern[:m.start()] + "x" + pattern[m.end():]
        if bound > MAX_SHARDS:
            break
    return bound


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
    paths = list_shards(spec)
    shard, offset, size, labels, without_image, empty = [], [], [], [], 0, []
    top = None                                         # (label, member, shard) of the largest class index
    for s, path in enumerate(paths):
        found = 0
        for image, label, member in _samples(path):
            if image is None:
                without_image += 1
                continue
            found += 1
            shard.append(s), offset.append(image[0]), size.append(image[1]), labels.append(label)
            if label is not None and (top is None or label > top[0]):
                top = (label, member, path)
        if not found:
            empty.append(path)
    if without_image:
        log.warning(f"data: {without_image} sample(s) in {spec} have no image ({', '.join(IMAGE_EXTS)}); skipped")
    if not shard:
        raise UserError(f"data: no images in the shards of {spec}")
    if empty:
        log.warning(f"data: {len(empty)} shard(s) of {spec} hold no image (first: {empty[0]}); the others are used")
    has = [label is not None for label in labels]
    if any(has) and not all(has):
        raise UserError(f"data: {has.count(False)} of {len(has)} samples in {spec} have no .cls label; label all "
                        "or none")
    classes = _classes(paths[0].parent / CLASSES_FILE, top, len(labels)) if all(has) else []
    idx = ShardIndex(paths, np.asarray(shard, np.int32), np.asarray(offset, np.int64), np.asarray(size, np.int64))
    return idx, (labels if all(has) else None), classes


def _samples(path: Path):
    """(image (offset, size) or None, class index or None, the .cls member's name) for each sample of one shard, in
    order. A shard that is not a whole plain tar (compressed, truncated, damaged) is refused by name."""
    from webdataset.tariterators import base_plus_ext

    members, tar = _members(path)
    with tar:
        key, sample = None, {}
        for m in members + [None]:                        # None: flush the last sample
            k, ext = base_plus_ext(m.name) if m is not None and m.isfile() and not m.issparse() else (None, None)
            if m is not None and k is None:
                continue
            if k != key and sample:
                yield sample.get("image"), sample.get("cls"), sample.get("cls_member")
                sample = {}
            key = k
            if m is None:
                break
            ext = ext.lower()
            if ext in IMAGE_EXTS and "image" not in sample:
                sample["image"] = (m.offset_data, m.size)
            elif ext == "cls":
                if m.size > MAX_CLS_BYTES:
                    raise UserError(f"data: {m.name} in {path} is {m.size:,} bytes, not a class index")
                sample["cls"], sample["cls_member"] = _class_index(tar.extractfile(m).read(), path, m.name), m.name


def _members(path: Path) -> tuple[list, tarfile.TarFile]:
    """The members of one shard and the open tar, after checking that the file is whole: every member's data lies
    inside it and the archive ends in its end-of-archive block (Python's tarfile stops quietly at a cut header)."""
    fix = "re-pack the shards (gankit shards) or leave this one out"
    disk = path.stat().st_size
    if disk == 0:
        raise UserError(f"data: shard {path} is empty (0 bytes); {fix}")
    try:
        tar = tarfile.open(path, "r:")  # "r:": plain tar only; a compressed one cannot be read at an offset
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"data: {path} is not a plain tar file ({e}); shards must be uncompressed .tar") from None
    try:
        members = tar.getmembers()
        end = tar.offset                                   # where the header after the last member would be
        with open(path, "rb") as f:
            f.seek(end)
            marker = f.read(tarfile.BLOCKSIZE)
    except (tarfile.TarError, OSError, EOFError) as e:
        tar.close()
        raise UserError(f"data: shard {path} is truncated or damaged ({e}); {fix}") from None
    cut = next((m for m in members if m.offset_data + m.size > disk), None)
    if cut is not None or len(marker) < tarfile.BLOCKSIZE or marker.count(0) != len(marker):
        tar.close()
        where = (f"{cut.name} ends past the end of the file" if cut is not None else
                 f"no end-of-archive block after byte {end:,} of {disk:,}")
        raise UserError(f"data: shard {path} is truncated or damaged ({where}); {fix}")
    return members, tar


def _class_index(raw: bytes, path: Path, member: str) -> int:
    """A .cls member's text: a whole number 0, 1, ... (ASCII digits; Python's int() would take '1_0' or '٣')."""
    text = raw.decode("ascii", errors="replace").strip()
    if re.fullmatch(r"-\d+", text):
        raise UserError(f"data: {member} in {path} is a negative class index ({text})")
    if not re.fullmatch(r"\d+", text):
        raise UserError(f"data: {member} in {path} is not a class index (a whole number 0, 1, ...; got "
                        f"{raw[:20]!r})")
    return int(text)


def _classes(names: Path, top: tuple[int, str, Path], n_samples: int) -> list[str]:
    """The class names: classes.txt's lines (each named once, none empty), or "0".."K-1" without the file; the
    largest .cls label (`top`: label, member, shard) must have a name."""
    label, member, shard = top
    count = label + 1
    if not names.is_file():
        if count > n_samples:  # K classes need at least K samples; a label past that is a wrong label
            raise UserError(f"data: {member} in {shard} has class index {label:,}, but the shards hold "
                            f"{n_samples:,} samples; class indices run 0..K-1 (name the classes in {names})")
        return [str(i) for i in range(count)]
    try:
        text = names.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"data: {names} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():              # the file's final newline (or a few) ends no class name
        lines.pop()
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise UserError(f"data: line {blank + 1} of {names} is empty; name every class, one per line")
    first: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line in first:
            raise UserError(f"data: {names} names {line!r} twice (lines {first[line] + 1} and {i + 1})")
        first[line] = i
    if len(lines) < count:
        raise UserError(f"data: {names} names {len(lines)} classes, but {member} in {shard} has class index {label}"
                        f"; name classes 0..{label}, one per line")
    if len(lines) > count:
        log.warning(f"data: {names} names {len(lines)} classes; the labels use 0..{label}, so the first {count} "
                    "are the data set's classes")
    return lines[:count]


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
    if out.exists() and not out.is_dir():
        raise UserError(f"shards: {out} is a file; --out names a folder for the shards")
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
        outputs.write_atomic(out / CLASSES_FILE, lambda tmp: tmp.write_text("\n".join(classes) + "\n"))
    return sorted(out.glob("shard-*.tar"))
