"""Image data sets: scikit-learn's 8x8 digits, folders of images, and torchvision's MNIST, Fashion-MNIST, CIFAR-10."""

from __future__ import annotations

import gzip
import io
import logging
import os
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2 import functional as TF

from gankit.data import Dataset
from gankit.errors import UserError

log = logging.getLogger("gankit")

TORCHVISION_SETS = ("mnist", "fashion-mnist", "cifar10")
DIGIT_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def to_stored(x: torch.Tensor, img_size: int, channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 or [0, 1] float -> uint8 at img_size x img_size with the asked channels (how a Dataset
    stores images; Dataset.batch scales them to [-1, 1])."""
    if x.dtype == torch.uint8 and x.shape[-1] == x.shape[-2] == img_size and channels in (0, x.shape[1]):
        return x.contiguous()
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.shape[-1] != img_size or x.shape[-2] != img_size:
        x = TF.resize(x, [img_size, img_size], antialias=True).clamp(0, 1)
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels == 1 and x.shape[1] == 3:
        x = TF.rgb_to_grayscale(x)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).contiguous()


def load_digits(img_size: int, channels: int) -> Dataset:
    """The 1,797 8x8 digits that ship inside scikit-learn (values 0..16), upsampled to img_size."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(bunch.target).long()
    return Dataset("digits", to_stored(x, img_size, channels), y, DIGIT_NAMES)


def load_fake(img_size: int, channels: int, n: int) -> Dataset:
    """Random images that need no file: for smoke runs and `gankit bench` (pytorch/examples' dcgan has the same)."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randint(0, 256, (n, channels or 3, img_size, img_size), dtype=torch.uint8, generator=gen)
    return Dataset("fake", x)


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


def load_folder(path: str, img_size: int, channels: int, **options):
    """Every image under `path`, searched recursively; top-level sub-folders become class labels (data/folder.py:
    the loop, the resize policy and the summary; each file is decoded by open_image)."""
    from gankit.data import folder

    return folder.load(path, img_size, channels, **options)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not: magic, dims as big-endian int32, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(4 + 4 * 4 + 2**31)  # MNIST's sets are tens of MB; more than 2 GB is not an IDX file here
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise UserError(f"data: cannot read {path} ({type(e).__name__}: {e}); is it a gzipped IDX file?") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"data: {path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    if not 1 <= ndim <= 4 or len(raw) < 4 + 4 * ndim:
        raise UserError(f"data: {path} has a bad IDX header ({ndim} dimensions in a file of {len(raw)} bytes)")
    dims = [int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)]
    if any(d <= 0 for d in dims):
        raise UserError(f"data: {path} has a bad IDX header (dimensions {dims})")
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims, dtype=object)):
        raise UserError(f"data: {path} is truncated or padded ({data.size} bytes of data, the header says "
                        f"{int(np.prod(dims, dtype=object))})")
    return data.reshape(tuple(dims))


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_idx_pair(folders: list[Path]) -> tuple[Path, Path] | None:
    """train-* is preferred; t10k-* (the 10k test split) is used when it is all there is."""
    for split in ("train", "t10k"):
        for folder in folders:
            images, labels = _find(folder, f"{split}-images-idx3-ubyte"), _find(folder, f"{split}-labels-idx1-ubyte")
            if images and labels:
                return images, labels
    return None


def _offline() -> bool:
    return os.environ.get("GANKIT_OFFLINE", "") not in ("", "0")


def load_torchvision(name: str, data_dir: str, img_size: int, channels: int) -> Dataset:
    import torchvision.datasets as tvd

    root = Path(data_dir).expanduser()
    if name == "cifar10":
        try:
            ds = tvd.CIFAR10(str(root), train=True, download=False)
        except RuntimeError:
            ds = _download(lambda: tvd.CIFAR10(str(root), train=True, download=True), name, root,
                           "cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/ folder)", root)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # (50000, 3, 32, 32) uint8
        return Dataset(name, to_stored(x, img_size, channels), torch.tensor(ds.targets), CIFAR_NAMES)

    cls, names = (tvd.MNIST, DIGIT_NAMES) if name == "mnist" else (tvd.FashionMNIST, FASHION_NAMES)
    raw = root / cls.__name__ / "raw"  # torchvision's own layout
    pair = _find_idx_pair([root, raw])
    if pair is None:
        ds = _download(lambda: cls(str(root), train=True, download=True), name, root,
                       "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz", raw)
        x, y = ds.data.unsqueeze(1), ds.targets.long()
    else:
        if pair[0].name.startswith("t10k"):
            log.warning(f"data: {name} training split not found in {pair[0].parent}; training on the 10k test split")
        x = torch.from_numpy(read_idx(pair[0]).copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
        y = torch.from_numpy(read_idx(pair[1]).astype(np.int64))
        if len(x) != len(y):
            raise UserError(f"data: {pair[0]} holds {len(x)} images but {pair[1]} {len(y)} labels")
    return Dataset(name, to_stored(x, img_size, channels), y, names)


STACKED_SEED = 20_170_613  # the Stacked MNIST data set is fixed; training seeds vary the model, not the data


def load_stacked_mnist(data_dir: str, img_size: int, n: int) -> Dataset:
    """Stacked MNIST (Metz et al. 2017; PacGAN's and VEEGAN's benchmark): n RGB images whose three channels are
    three MNIST digits drawn independently (seed-fixed), so 1,000 modes (the 3-digit numbers 000..999, the label)."""
    mnist = load_torchvision("mnist", data_dir, 28, 1)                    # (N, 1, 28, 28) uint8
    gen = torch.Generator().manual_seed(STACKED_SEED)
    pick = torch.randint(len(mnist), (n, 3), generator=gen)               # (n, 3) digit images per channel
    x = mnist.x[pick, 0]                                                  # (n, 3, 28, 28)
    digits = mnist.y[pick]                                                # (n, 3)
    y = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return Dataset("stacked-mnist", to_stored(x, img_size, 3), y, [f"{k:03d}" for k in range(1000)])


def _download(make, name: str, root: Path, files: str, where: Path):
    message = (f"data: {name} not found in {root}; put {files} in {where} "
               f"(or run once with network access to download it there)")
    if _offline():
        raise UserError(message)
    try:
        return make()
    except Exception:  # torchvision raises URLError, RuntimeError or OSError depending on where it failed
        raise UserError(message) from None
