"""Images in and out of the applications (`gankit inpaint`, `gankit upscale`, `gankit classify`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from gankit.data.images import load_folder, to_stored
from gankit.errors import UserError
from gankit.viz import to_uint8


def read_images(source: str | Path, channels: int, size: int | None = None):
    """Images as float (N, C, H, W) in [-1, 1] and their labels (N,) or None.

    FILE.npz: `images` uint8 (N, H, W, C) or (N, H, W), as `gankit sample` writes them, and `labels` if present.
    DIR: every image file under it, sorted by path; top-level sub-folders become labels, as for data: folder:PATH.
    size: resize to size x size; None: the images must share one size.
    """
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"images: {path} does not exist")
        try:
            with np.load(path) as f:
                if "images" not in f:
                    raise UserError(f"images: {path} holds no `images` array (it has {', '.join(f.files)})")
                arr, labels = f["images"], (f["labels"] if "labels" in f else None)
        except (OSError, ValueError) as e:
            raise UserError(f"images: cannot read {path} ({e})".splitlines()[0]) from None
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.dtype != np.uint8:
            raise UserError(f"images: {path}: `images` must be uint8 (N, H, W, C), got {arr.dtype} {arr.shape}")
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        x = to_stored(x, size or x.shape[-1], channels)
        y = torch.from_numpy(np.asarray(labels)).long() if labels is not None else None
    elif path.is_dir():
        if size is None:
            size = _common_size(path)
        data = load_folder(str(path), size, channels)
        x, y = data.x, data.y
    else:
        raise UserError(f"images: {path} is neither a .npz file nor a folder of images")
    if y is not None and len(y) != len(x):
        raise UserError(f"images: {path} holds {len(x)} images but {len(y)} labels")
    return x.float().div(127.5).sub(1.0), y


def _common_size(folder: Path) -> int:
    sizes = set()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS:
            try:
                with Image.open(p) as im:
                    sizes.add(im.size)
            except OSError:
                continue
    if not sizes:
        raise UserError(f"images: no readable images under {folder}")
    if len(sizes) > 1 or len({s for size in sizes for s in size}) > 1:
        raise UserError(f"images: the images under {folder} must be square and of one size; found "
                        f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes))}")
    return next(iter(sizes))[0]


def new_folder(out: str | Path, command: str) -> Path:
    """An output folder that is new or empty: nothing the user already had is overwritten."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{command}: {out} exists and is not an empty folder; choose another --out (nothing is "
                        "overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npz(path: Path, images: torch.Tensor, **arrays) -> Path:
    """images (N, C, H, W) in [-1, 1] -> `images` uint8 (N, H, W, C), as `gankit sample` writes, plus arrays."""
    np.savez_compressed(path, images=to_uint8(images),
                        **{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in arrays.items()
                           if v is not None})
    return path
