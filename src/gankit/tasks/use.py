"""Images in and out of the tasks' uses (`gankit inpaint`, `gankit upscale`, `gankit classify`, `gankit predict`): every
input read and checked before anything is written, and every output folder staged so that a failure leaves nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from gankit import outputs
from gankit.config import SEED_LIMIT, argument, clip, device_argument, path_argument, quote
from gankit.data.images import load_folder, to_stored
from gankit.errors import UserError
from gankit.viz import to_uint8


STEP_MAX = 10**12


def run_arguments(seed, step, device) -> tuple[int, int | None, str]:
    """The arguments every application shares, checked: seed 0..2**32-1, a checkpoint step or None, a device."""
    return (argument("seed", seed, int, 0, SEED_LIMIT - 1), argument("step", step, int, 0, STEP_MAX, optional=True),
            device_argument("device", device))


def model_channels(model) -> int:
    """The image channels a rebuilt model (its `spec`: dcgan, srresnet, mlp, ssl-mlp) makes or takes."""
    spec = model.spec
    shape = spec.get("out_shape") or spec.get("in_shape")
    return int(spec["channels"]) if "channels" in spec else int(shape[0])


def read_images(source: str | Path, channels: int, size: int | None = None, classes: list[str] | int | None = None):
    """Images as float (N, C, H, W) in [-1, 1] and their labels (N,) or None; N >= 1.

    FILE.npz: `images` uint8 (N, H, W, C) or (N, H, W), square, with the run's `channels`, as `gankit sample`
    writes them, and `labels` (N,) or (N, 1) if present. DIR: every image file under it, sorted by path, decoded to
    `channels`; top-level sub-folders become labels, as for data: folder:PATH.
    size: resize to size x size; None: the images must share one size.
    classes: the run's class names (or their count): labels must be among them; a folder's sub-folders are matched
    to them by name.
    """
    path = Path(path_argument("images", source))
    if path.suffix == ".npz":
        x, y = _read_npz(path, channels, size)
        y = None if y is None else _labels(y, len(x), classes, path)
    elif path.is_dir():
        data = load_folder(str(path), size if size is not None else _common_size(path), channels)
        x, y = data.x, _folder_labels(data, classes, path)
    else:
        raise UserError(f"images: {path} is neither a .npz file nor a folder of images")
    return x.float().div(127.5).sub(1.0), y


def _read_npz(path: Path, channels: int, size: int | None):
    """`images` of FILE.npz as uint8 (N, C, H, W) at `size`, and its raw `labels` or None."""
    if not path.is_file():
        raise UserError(f"images: {path} does not exist")
    try:
        with np.load(path) as f:
            if "images" not in f:
                raise UserError(f"images: {path} holds no `images` array (it has {clip(', '.join(f.files))})")
            arr, labels = f["images"], (f["labels"] if "labels" in f else None)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"images: cannot read {path} ({type(e).__name__}: {e})".splitlines()[0]) from None
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError(f"images: {path}: `images` holds NaN or inf values; give uint8 pixels 0..255")
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise UserError(f"images: {path}: `images` must be uint8 (N, H, W, C) with pixels 0..255, as `gankit "
                        f"sample` writes them; got {arr.dtype} {arr.shape}")
    n, h, w, c = arr.shape
    if n == 0 or h == 0 or w == 0:
        raise UserError(f"images: {path} holds no images (`images` has shape {arr.shape})")
    if h != w:
        raise UserError(f"images: {path}: the images are {h} x {w} pixels; they must be square, as the run's")
    if c != channels:
        raise UserError(f"images: {path}: the images have {c} channel{'s' if c != 1 else ''}; the run's model takes "
                        f"{channels} ({'grayscale' if channels == 1 else 'RGB'})")
    x = to_stored(torch.from_numpy(arr).permute(0, 3, 1, 2), size or w, channels)
    return x, labels


def _labels(raw: np.ndarray, n: int, classes, path: Path) -> torch.Tensor:
    """`labels` of FILE.npz as class indices (N,): (N,) or (N, 1) integers, one per image, among the classes."""
    arr = np.asarray(raw)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise UserError(f"images: {path}: `labels` must have shape (N,) or (N, 1), got {arr.shape}")
    if len(arr) != n:
        raise UserError(f"images: {path} holds {n} images but {len(arr)} labels")
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not (np.isfinite(arr).all()
                                                                       and (arr == np.round(arr)).all())):
        raise UserError(f"images: {path}: `labels` must be class indices (integers), got {arr.dtype} values such as "
                        f"{quote(arr[:3].tolist())}")
    count = len(classes) if isinstance(classes, list) else classes
    if count and (arr.min() < 0 or arr.max() >= count):
        bad = arr[(arr < 0) | (arr >= count)][0]
        raise UserError(f"images: {path}: `labels` holds {quote(bad.item())}, outside the run's classes "
                        f"0..{count - 1}")
    return torch.from_numpy(arr.astype(np.int64))


def _folder_labels(data, classes, path: Path) -> torch.Tensor | None:
    """A folder's labels as the run's class indices: its sub-folders matched to the run's class names."""
    if data.y is None:
        return None
    if isinstance(classes, list) and classes:
        index = {name: i for i, name in enumerate(classes)}
        unknown = [c for c in data.class_names if c not in index]
        if unknown:
            raise UserError(f"images: the sub-folder {quote(unknown[0])} of {path} is not one of the run's classes "
                            f"({clip(', '.join(classes))}); name the sub-folders by class")
        return torch.tensor([index[c] for c in data.class_names])[data.y.long()]
    count = classes if isinstance(classes, int) else 0
    if count and len(data.class_names) > count:
        raise UserError(f"images: {path} has {len(data.class_names)} sub-folders (classes); the run has {count}")
    return data.y.long()


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
                        f"{clip(', '.join(f'{w}x{h}' for w, h in sorted(sizes)))}")
    return next(iter(sizes))[0]


def check_new_folder(out: str | Path, command: str) -> Path:
    """An output folder that is new or empty (nothing the user already had is overwritten), checked but not made."""
    out = Path(path_argument("out", out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{command}: {out} exists and is not an empty folder; choose another output folder (out) "
                        "(nothing is overwritten)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{command}: {parent} is a file, so the folder {out} cannot be made")
            break
    return out


@contextlib.contextmanager
def new_parents(folder: Path):
    """Make `folder` with its missing parents for the block; on any failure in it, remove those it made."""
    made = [p for p in [folder, *folder.parents] if not p.exists()]   # the deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    except BaseException:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


@contextlib.contextmanager
def staged_folder(out: str | Path, command: str):
    """Yield a hidden folder beside `out` to write the results into; it becomes `out` when the block ends, and on
    any failure (an error, Ctrl-C) it is removed with the parent folders it made, so that nothing is left behind.
    Call it after every input is read and checked: the folder is made (and its place proven writable) here."""
    out = check_new_folder(out, command)
    with new_parents(out.parent):
        stage = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
        stage.mkdir()   # with the umask's permissions, as the folder made in its place would have
        try:
            yield stage
            os.replace(stage, out)   # onto a missing or empty folder
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)


def write_new_file(path: Path, text: str) -> Path:
    """Write text to a new file atomically, making its missing folders; a failure leaves neither."""
    with new_parents(path.parent):
        return outputs.write_atomic(path, lambda tmp: tmp.write_text(text))


def save_npz(path: Path, images: torch.Tensor, **arrays) -> Path:
    """images (N, C, H, W) in [-1, 1] -> `images` uint8 (N, H, W, C), as `gankit sample` writes, plus arrays."""
    np.savez_compressed(path, images=to_uint8(images),
                        **{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in arrays.items()
                           if v is not None})
    return path
