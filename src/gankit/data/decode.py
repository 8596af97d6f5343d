"""Decoding one image file, faithfully, into an 8-bit image (open_image), and why a readable file is refused
(SkippedImage). Everything that reads image files (folders, tar shards, streamed sets) goes through open_image.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS

# Pillow's decompression-bomb guard is a warning up to twice this and an error beyond; gankit skips every file
# above it, by name, before decoding a pixel (a 9,000 x 10,000 image is already 270 MB as RGB).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


IMAGE_EXTENSIONS = tuple(IMG_EXTENSIONS) + (".gif",)  # torchvision's list, and GIF (its first frame)


class SkippedImage(Exception):
    """A file that is an image but that gankit will not decode; the message says why."""


def open_image(path: Path, mode: str, background: tuple[int, int, int] = (255, 255, 255),
               notes: Counter | None = None) -> Image.Image:
    """One image file as an 8-bit image in `mode` ("L" or "RGB"), decoded faithfully:

    - 16-bit grayscale (PNG, TIFF) is scaled to 8 bits (65535 -> 255), not clipped; 16-bit colour is reduced by
      Pillow itself; 32-bit integer images must hold 0..65535, float images 0..1 (or 0..255), else skipped;
    - transparency (RGBA, LA, a palette or tRNS transparency) is composited onto `background`;
    - CMYK is converted with the file's ICC profile when it has one (Pillow's plain formula otherwise);
    - of an animated or multi-page file (GIF, APNG, WebP, TIFF) the first frame is used;
    - the EXIF orientation is applied;
    - a file of more than MAX_PIXELS pixels raises SkippedImage before it is decoded.
    `notes` counts what was done ("alpha", "animated", "cmyk", "16-bit"). Raises OSError/ValueError for files that
    cannot be decoded.
    """
    notes = notes if notes is not None else Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the size is checked below, by name; Pillow's notes on odd headers too
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            raise SkippedImage(f"over {MAX_PIXELS:,} pixels (decompression-bomb guard)") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise SkippedImage(f"{w}x{h} is over {MAX_PIXELS:,} pixels (decompression-bomb guard)")
        if getattr(im, "n_frames", 1) > 1:
            notes["animated"] += 1
            im.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd EXIF or palette data: the pixels still come
            im.load()
            im = ImageOps.exif_transpose(im) or im
        return _to_mode(im, mode, background, notes)


def _to_mode(im: Image.Image, mode: str, background, notes: Counter) -> Image.Image:
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else None
        if im.mode == "I":
            top = 255.0 if arr.min() >= 0 and arr.max() <= 255 else 65535.0 if arr.min() >= 0 and arr.max() <= 65535 \
                else None
        elif im.mode == "F":
            finite = np.isfinite(arr).all()
            top = 1.0 if finite and arr.min() >= 0 and arr.max() <= 1 else \
                255.0 if finite and arr.min() >= 0 and arr.max() <= 255 else None
        if top is None:
            raise SkippedImage(f"{im.mode} pixel values {arr.min():g}..{arr.max():g} are outside the ranges gankit "
                               "reads (0..65535 for integers, 0..1 or 0..255 for floats)")
        if top == 65535.0:
            notes["16-bit"] += 1
        im = Image.fromarray(np.round(arr * (255.0 / top)).astype(np.uint8), "L")
    if im.mode == "CMYK":
        notes["cmyk"] += 1
        icc = im.info.get("icc_profile")
        if icc:
            try:
                from PIL import ImageCms

                im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                               ImageCms.createProfile("sRGB"), outputMode="RGB")
            except Exception:  # noqa: BLE001: a broken profile: fall back to Pillow's formula
                im = im.convert("RGB")
        else:
            im = im.convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        im.mode in ("P", "L", "RGB", "1") and "transparency" in im.info)
    if has_alpha:
        notes["alpha"] += 1
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        im = Image.alpha_composite(base, rgba).convert("RGB")
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # 1, P, YCbCr, LAB, HSV: Pillow's conversions (ValueError if it has none)
    return im if im.mode == mode else im.convert(mode)


# What decoding one file can raise on corrupt data: Pillow's decoders raise OSError, ValueError, SyntaxError,
# IndexError, struct.error, ... and SkippedImage says why a readable file is refused. Any of them means this one
# file is unreadable: the folder loader skips it and counts it, and a streamed set reads the next file instead.
UNREADABLE = (Exception,)
