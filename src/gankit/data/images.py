"""Image data sets: scikit-learn's 8x8 digits, folders of images, and torchvision's MNIST, Fashion-MNIST, CIFAR-10.

A folder (load_folder) is listed and resized by data/folder.py, its files decoded by data/decode.py, and the set held
in memory or streamed by data/stream.py; load_folder puts those together."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from gankit.data import folder
from gankit.data.dataset import Dataset
# Decoding one file is decode.py's; its names stay importable from here. A test that lowers MAX_PIXELS patches
# decode.MAX_PIXELS, which is the one open_image reads.
from gankit.data.decode import MAX_PIXELS, SkippedImage, open_image  # noqa: F401
from gankit.data.stream import ImageSource, hold_or_stream
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


def load_folder(path: str, img_size: int, channels: int, resize: str = "crop", stream: str = "off",
                memory_budget_gb: float = 4.0, workers: int = 0, background: tuple[int, int, int] = (255, 255, 255)):
    """Every image under `path`, searched recursively; top-level sub-folders become class labels. The folder as a
    Dataset held in memory (uint8), or as a StreamedDataset when `stream` says so (on, or auto and the set at
    img_size is larger than memory_budget_gb). Unreadable files are skipped and counted; images with transparency
    are composited onto `background`."""
    root = Path(path).expanduser()
    files, labels, classes = folder.list_files(root)
    source = ImageSource(files=files, mode="L" if channels == 1 else "RGB", size=img_size,
                         policy=folder.check(resize), background=background)
    return hold_or_stream(f"folder:{root}", str(root), source, labels, classes, stream, memory_budget_gb, workers)


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
