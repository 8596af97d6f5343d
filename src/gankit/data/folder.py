"""Folders of images (data: folder:PATH): the files and their labels, the resize policy, and the one-line summary of
what was read. images.load_folder puts a folder together from these; whether the set is held in memory or streamed
is data/stream.py's choice (hold_or_stream), for folders and tar shards alike.

The resize policy decides what a non-square image becomes at img_size x img_size:
    crop     shorter side to img_size, then the centre square (what is outside it is cut)
    pad      longer side to img_size, then black borders to a square (nothing is cut)
    stretch  both sides to img_size (the aspect ratio changes)
Opening one file is decode.open_image's job; everything here works on what it returns.
"""

from __future__ import annotations

import os
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from gankit.data.dataset import labelled_files
from gankit.data.decode import IMAGE_EXTENSIONS, open_image
from gankit.errors import UserError

RESIZE = ("crop", "pad", "stretch")
HEADER_SAMPLE = 1000        # files whose headers scan() reads, evenly spaced over the folder
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")  # Pillow's modes without colour
SKIPPED_NAMED = 3           # skipped files named in the warning line before the rest are counted


def list_files(root: Path) -> tuple[list[str], list[int] | None, list[str]]:
    """The image files under root, sorted; their labels when every file sits in one of >= 2 top-level sub-folders."""
    return labelled_files(root, IMAGE_EXTENSIONS, "images", "data: folder:PATH needs a folder of images")


@dataclass
class Scan:
    """What the headers of a folder's files say before any is decoded: how many files, and of the sampled ones
    their sizes (w, h) and how many hold no colour."""
    files: int
    sizes: list[tuple[int, int]]
    gray: int
    tried: int = 0

    @property
    def sampled(self) -> bool:
        return self.tried < self.files


def scan(root: Path) -> Scan:
    """The headers of up to HEADER_SAMPLE files under root, evenly spaced (Pillow reads a header without decoding
    the pixels: a few milliseconds for a thousand files). Files that do not open are left to the loader, which
    names them."""
    files, _, _ = list_files(Path(root).expanduser())
    sizes, gray, picked = [], 0, files[:: max(1, len(files) // HEADER_SAMPLE)][:HEADER_SAMPLE]
    for f in picked:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(f) as im:
                    sizes.append(im.size)
                    gray += im.mode in GRAY_MODES
        except Exception:  # noqa: BLE001: any file Pillow cannot open; the loader skips and names it
            continue
    return Scan(len(files), sizes, gray, len(picked))


def auto_size(found: Scan, sizes: tuple[int, ...], policy: str) -> tuple[int, int]:
    """(img_size, the median side it came from): the largest of a model's `sizes` not above the median side that
    the resize policy scales (the shorter for crop and stretch, the longer for pad), so that no image is enlarged
    beyond what most of them hold; the smallest size when every image is smaller."""
    if not found.sizes:
        return min(sizes), 0
    side = round(statistics.median((max if policy == "pad" else min)(w, h) for w, h in found.sizes))
    fits = [s for s in sorted(sizes) if s <= side]
    return (fits[-1] if fits else min(sizes)), side


def fit(x: torch.Tensor, size: int, policy: str) -> torch.Tensor:
    """uint8 (C, h, w) -> uint8 (C, size, size) by the resize policy (antialiased)."""
    h, w = x.shape[-2:]
    if policy == "stretch":
        return TF.resize(x, [size, size], antialias=True) if (h, w) != (size, size) else x
    if policy == "pad":
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        x = TF.resize(x, [nh, nw], antialias=True) if (nh, nw) != (h, w) else x
        left, top = (size - nw) // 2, (size - nh) // 2
        return TF.pad(x, [left, top, size - nw - left, size - nh - top], fill=0)
    if min(h, w) != size:  # crop: the shorter side to size, then the centre square
        x = TF.resize(x, [size], antialias=True)
    return TF.center_crop(x, [size, size])


def read_image(file, mode: str, size: int, policy: str, background=(255, 255, 255)):
    """One file (a path or a file object) as training sees it: uint8 (C, size, size), its size (w, h), and what
    decoding did (a Counter of decode.open_image's notes: alpha, animated, cmyk, 16-bit)."""
    notes = Counter()
    im = open_image(file, mode, background, notes)
    return fit(TF.pil_to_tensor(im), size, policy), im.size, notes


@dataclass
class Summary:
    """What a folder held and what resizing did to it, for one line of log."""
    size: int
    policy: str
    read: int = 0
    skipped: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)
    skipped_names: list[str] = field(default_factory=list)

    def add(self, wh: tuple[int, int] | None, name: str | None = None) -> None:
        if wh is None:
            self.skipped += 1
            if name is not None:
                self.skipped_names.append(name)
        else:
            self.read += 1
            self.sizes.append(wh)

    def resizing(self) -> str:
        odd = [(w, h) for w, h in self.sizes if w != h]
        small = sum(min(w, h) < self.size if self.policy == "crop" else max(w, h) < self.size for w, h in self.sizes)
        lost = sum(1 - min(w, h) / max(w, h) for w, h in odd) / max(1, len(odd))
        what = {"crop": f"shorter side to {self.size} px, centre square: {lost:.0%} of each non-square image cut "
                        "on average",
                "pad": f"longer side to {self.size} px, black borders: {lost:.0%} of each non-square image is "
                       "border on average",
                "stretch": f"each side to {self.size} px: aspect ratio changed for the non-square images"}[self.policy]
        return (f"{len(odd):,} not square, {small:,} smaller than {self.size} px (enlarged); resize {self.policy}: "
                + (what if odd else f"each image to {self.size} px"))

    def skipped_line(self, where: str, total: int) -> str:
        """The warning for the unreadable files: the first SKIPPED_NAMED by name (relative to the folder), then a
        count of the rest."""
        names = [os.path.relpath(n, where) if os.path.isabs(n) == os.path.isabs(where) else n
                 for n in self.skipped_names[:SKIPPED_NAMED]]
        rest = self.skipped - len(names)
        return (f"data: skipped {self.skipped} unreadable image file(s) of {total} under {where}"
                + (f": {', '.join(names)}" if names else "") + (f" and {rest} more" if names and rest > 0 else ""))

    def line(self, where: str, classes: list[str], labels: list[int] | None, sampled: bool = False) -> str:
        (w0, h0), (w1, h1) = min(self.sizes, key=lambda s: s[0] * s[1]), max(self.sizes, key=lambda s: s[0] * s[1])
        if classes and labels is not None and len(classes) <= 10:
            counts = torch.bincount(torch.tensor(labels), minlength=len(classes)).tolist()
            cls = f"{len(classes)} classes ({', '.join(f'{c} {k:,}' for c, k in zip(classes, counts))})"
        else:
            cls = f"{len(classes)} classes" if classes else "no class labels (no sub-folder per class)"
        head = (f"{where}: sizes of {self.read} sampled image(s)" if sampled else
                f"{where}: {self.read:,} images read" + (f", {self.skipped:,} unreadable skipped" if self.skipped
                                                         else ""))
        return (f"data: {head}; {cls}; sizes {w0}x{h0} to {w1}x{h1}, " + self.resizing())


def check(resize: str) -> str:
    if resize not in RESIZE:
        raise UserError(f"data: resize must be one of {', '.join(RESIZE)}, got {resize!r}")
    return resize
