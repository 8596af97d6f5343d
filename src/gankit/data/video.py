"""`data: video:PATH`, a folder of the user's clips for task predict. Each entry of the folder is one clip:

- a sub-folder of numbered frames (PNG, JPEG or any image decode.open_image reads), in the order of the numbers in
  their names (frame2.png before frame10.png);
- or one .npy / .npz file holding a uint8 array (T, H, W) or (T, H, W, C) (an .npz: its `frames` array, or its
  only one).

Frames are resized to img_size by the `resize` policy (data/folder.py) and decoded to `channels` (0: grayscale when
every clip is, else RGB). Each clip is cut into windows of `frames` frames, the examples training draws from; a clip
that cannot be read (a broken frame, an array of another type or shape) or that is shorter than one window is
skipped, counted and named in the log.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from gankit.data import folder
from gankit.data.dataset import Dataset
from gankit.data.decode import IMAGE_EXTENSIONS, UNREADABLE, open_image
from gankit.errors import UserError

log = logging.getLogger("gankit")

ARRAY_SUFFIXES = (".npy", ".npz")
NAMED = 5  # the skipped clips named in the log line, then a count of the rest


@dataclass
class Clips:
    """The clips of a folder, each uint8 (T, C, H, W), and their windows: (clip, first frame) pairs."""
    name: str
    clips: list[torch.Tensor]
    frames: int
    skipped: list[str] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self):
        self.windows = [(i, s) for i, c in enumerate(self.clips) for s in range(0, len(c) - self.frames + 1,
                                                                                 self.frames)]

    def clip_windows(self, clip_idx: torch.Tensor | None) -> list[int]:
        """The windows of the clips at clip_idx (all when None)."""
        keep = set(range(len(self.clips))) if clip_idx is None else set(clip_idx.tolist())
        return [w for w, (i, _) in enumerate(self.windows) if i in keep]

    def sequences(self, clip_idx: torch.Tensor | None = None) -> Dataset:
        """The windows of the clips at clip_idx (all when None) as a Dataset of sequences (N, frames, C, H, W)."""
        chosen = [self.windows[w] for w in self.clip_windows(clip_idx)]
        x = torch.stack([self.clips[i][s: s + self.frames] for i, s in chosen])
        return Dataset(self.name, x)


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _read_frames(clip: Path) -> np.ndarray:
    """A folder of numbered frames as uint8 (T, H, W, 3)."""
    files = sorted((p for p in clip.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: _natural(p.name))
    if not files:
        raise ValueError("no image files")
    frames = [np.asarray(open_image(p, "RGB")) for p in files]
    if len({f.shape for f in frames}) > 1:
        raise ValueError("its frames differ in size")
    return np.stack(frames)


def _read_array(path: Path) -> np.ndarray:
    """An .npy or .npz clip as uint8 (T, H, W, C)."""
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        with np.load(path, allow_pickle=False) as f:
            keys = ["frames"] if "frames" in f.files else f.files
            if len(keys) != 1:
                raise ValueError(f"holds {len(f.files)} arrays and none named frames")
            arr = f[keys[0]]
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3)):
        raise ValueError(f"holds {arr.dtype} {arr.shape}, not uint8 (T, H, W[, C]) with C 1 or 3")
    return arr[..., None] if arr.ndim == 3 else arr


def _read_clip(path: Path) -> np.ndarray:
    try:
        return _read_frames(path) if path.is_dir() else _read_array(path)
    except UNREADABLE as e:  # noqa: BLE001: whatever a broken file raises, that one clip is skipped by name
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(text if len(text) <= 80 else text[:80] + "...") from None


def _stored(arr: np.ndarray, img_size: int, channels: int, resize: str) -> torch.Tensor:
    """uint8 (T, H, W, C) -> (T, channels, img_size, img_size)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels == 1 and x.shape[1] == 3:
        x = x[:, :1] if _gray(arr) else TF.rgb_to_grayscale(x)   # gray frames decoded as RGB: exactly their values
    return folder.fit(x, img_size, resize).contiguous()


def _gray(arr: np.ndarray) -> bool:
    return arr.shape[-1] == 1 or bool((arr[..., :1] == arr).all())


def load_clips(path: str, img_size: int, channels: int, frames: int, resize: str = "crop") -> Clips:
    """Every clip under the folder `path` (see the module's docstring), cut into windows of `frames` frames."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"data: video:{path}: no such folder")
    entries = sorted((p for p in root.iterdir() if p.is_dir() or p.suffix.lower() in ARRAY_SUFFIXES),
                     key=lambda p: _natural(p.name))
    arrays, skipped, short = [], [], []
    for p in entries:
        try:
            arr = _read_clip(p)
        except ValueError as e:
            skipped.append(f"{p.name} ({e})")
            continue
        (arrays if len(arr) >= frames else short).append((p.name, arr))
    skipped += [f"{name} ({len(arr)} frames, fewer than frames {frames})" for name, arr in short]
    if not arrays:
        raise UserError(f"data: video:{root}: no readable clip of at least {frames} frames among {len(entries)} "
                        "entries (sub-folders of frames, .npy or .npz files)" +
                        (f"; skipped: {', '.join(skipped[:NAMED])}" if skipped else ""))
    channels = channels or (1 if all(_gray(a) for _, a in arrays) else 3)
    clips = Clips(f"video:{root}", [_stored(a, img_size, channels, folder.check(resize)) for _, a in arrays], frames,
                  skipped)
    log.info(f"data: video:{root}: {len(arrays)} clip(s) read, {len(clips.windows):,} windows of {frames} frames"
             + (f"; skipped {len(skipped)}: {', '.join(skipped[:NAMED])}" if skipped else "")
             + (f" and {len(skipped) - NAMED} more" if len(skipped) > NAMED else ""))
    return clips


def load(path: str, img_size: int, channels: int, frames: int = 20, resize: str = "crop") -> Dataset:
    """Every window of every clip: data.load's entry."""
    return load_clips(path, img_size, channels, frames, resize).sequences()
