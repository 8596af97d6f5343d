"""Sequence data sets for task predict: Moving MNIST (Srivastava et al. 2015), its stochastic version (Denton &
Fergus 2018, SVG), and a folder of the user's clips (video.py); `sequence_parts` gives a run's training and
held-out sequences, split as training and inference both need them.

A sequence set is a `SequenceSet`: a Dataset whose examples are sequences, x (N, T, C, H, W) uint8; Dataset.batch
scales them to [-1, 1] as it does images. `sources` (N, digits) holds, for moving digits, the index of each digit
image in its source (MNIST's order), so that a test can prove that no held-out digit was seen in training.

Moving MNIST, as Srivastava et al. made it and as SVG's code draws it: each digit (28 px in a 64 px frame, scaled
with img_size: 14 px in 32) starts at a random place with a random velocity of whole pixels per frame (up to 4 in
64 px), moves in a straight line and bounces off the edges; digits are combined by their maximum. Deterministic
(`moving-mnist`): a bounce reflects the velocity. Stochastic (`smoving-mnist`): at each bounce a new random
direction and speed away from that edge. The data set is fixed (its own seed, SEQUENCE_SEED); the held-out digits
are split off the digit images by data.dataset.holdout_indices BEFORE any sequence is made, so a held-out
sequence holds only digits training never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from gankit.data import images, video
from gankit.data.dataset import Dataset, holdout_indices
from gankit.errors import ConfigError

SEQUENCE_SEED = 20_150_208   # the sequences are fixed; training seeds vary the model, not the data
HELD_SEED = SEQUENCE_SEED + 1  # the held-out sequences draw from their own stream
MOVING = {"moving-mnist": False, "smoving-mnist": True}  # name: stochastic
DIGIT_SHARE = 28 / 64        # a digit's side over the frame's, as in Srivastava et al.
SPEED_SHARE = 4 / 64         # the largest speed (pixels per frame) over the frame's side, as in SVG's code


@dataclass
class SequenceSet(Dataset):
    """x (N, T, C, H, W) uint8 sequences; sources (N, digits) int64, the digit images each was made of (or None)."""
    sources: torch.Tensor | None = None

    def subset(self, idx: torch.Tensor) -> "SequenceSet":
        idx = idx.to(self.x.device)
        src = None if self.sources is None else self.sources[idx.cpu()]
        return SequenceSet(self.name, self.x[idx], None, [], files=self.files, sources=src)


def _sizes(img_size: int) -> tuple[int, int]:
    """(digit side, largest speed) in pixels for frames of img_size."""
    digit = max(2, min(img_size - 1, round(DIGIT_SHARE * img_size)))
    return digit, max(1, round(SPEED_SHARE * img_size))


def _bounce(pos: int, v: int, top: int, stochastic: bool, rng: np.random.Generator, speed: int) -> tuple[int, int]:
    """Position and velocity along one axis after leaving [0, top]: back on the edge, moving away from it (the same
    speed reflected, or, stochastic, a new random speed away from it)."""
    if 0 <= pos <= top:
        return pos, v
    inward = 1 if pos < 0 else -1
    new = int(rng.integers(1, speed + 1)) if stochastic else abs(v)
    return (0 if pos < 0 else top), inward * max(new, 1)


def trajectory(frames: int, img_size: int, digit: int, speed: int, stochastic: bool,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One digit's top-left corners (frames, 2) as (row, col), each in [0, img_size - digit], its velocity after
    each frame (frames, 2) and whether it bounced at each frame (frames,) bool. A stochastic bounce also draws a new
    velocity along the other axis (SVG)."""
    top = img_size - digit
    pos = rng.integers(0, top + 1, size=2)
    v = rng.integers(-speed, speed + 1, size=2)
    out, vel, bounced = np.zeros((frames, 2), np.int64), np.zeros((frames, 2), np.int64), np.zeros(frames, bool)
    for t in range(frames):
        hit = False
        for a in range(2):
            p, va = _bounce(int(pos[a]), int(v[a]), top, stochastic, rng, speed)
            if p != pos[a] or va != v[a]:
                hit = True
                if stochastic:
                    v[1 - a] = rng.integers(-speed, speed + 1)
            pos[a], v[a] = p, va
        out[t], vel[t], bounced[t] = pos, v, hit
        pos = pos + v
    return out, vel, bounced


def make_sequences(digit_images: torch.Tensor, n: int, frames: int, img_size: int, digits: int, stochastic: bool,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences (n, frames, 1, img_size, img_size) uint8 of `digits` digits drawn from digit_images
    (M, 1, S, S) uint8, and the index of each digit drawn (n, digits). Fixed by `seed`."""
    rng = np.random.default_rng(seed)
    side, speed = _sizes(img_size)
    glyphs = images.to_stored(digit_images, side, 1)[:, 0].numpy()            # (M, side, side)
    x = np.zeros((n, frames, img_size, img_size), np.uint8)
    picks = rng.integers(0, len(glyphs), size=(n, digits))
    for i in range(n):
        for d in range(digits):
            glyph = glyphs[picks[i, d]]
            corners, _, _ = trajectory(frames, img_size, side, speed, stochastic, rng)
            for t, (r, c) in enumerate(corners):
                np.maximum(x[i, t, r: r + side, c: c + side], glyph, out=x[i, t, r: r + side, c: c + side])
    return torch.from_numpy(x).unsqueeze(2), torch.from_numpy(picks)


def mnist_digits(data_dir: str) -> Dataset:
    """The digit images moving-mnist is made of: MNIST's IDX files under data_dir (its train split, or the 10k test
    split when that is all there is), (N, 1, 28, 28) uint8."""
    return images.load_torchvision("mnist", data_dir, 28, 1)


def _check_size(n: int, frames: int, img_size: int, budget_gb: float) -> None:
    size = n * frames * img_size * img_size
    if size > budget_gb * 1e9:
        raise ConfigError("n_points", f"{n:,} sequences of {frames} frames at {img_size} px are "
                                      f"{size / 1e9:.1f} GB, more than memory_budget_gb {budget_gb:g}; ask for fewer")


def moving_parts(name: str, source: Dataset, img_size: int, n: int, frames: int, digits: int, holdout: int,
                 budget_gb: float = 4.0) -> tuple[SequenceSet, SequenceSet | None]:
    """(training sequences, held-out sequences or None) of moving digits from the digit images of `source`: the
    `holdout` held-out digit images (holdout_indices) make `holdout` held-out sequences, the others n training ones.
    sources index the digit images of `source`."""
    _check_size(n, frames, img_size, budget_gb)
    stochastic = MOVING[name]
    train_idx, held_idx = holdout_indices(len(source), holdout)
    x, picks = make_sequences(source.x[train_idx], n, frames, img_size, digits, stochastic, SEQUENCE_SEED)
    train = SequenceSet(name, x, sources=train_idx[picks])
    if not holdout:
        return train, None
    x, picks = make_sequences(source.x[held_idx], holdout, frames, img_size, digits, stochastic, HELD_SEED)
    return train, SequenceSet(name, x, sources=held_idx[picks])


def load(name: str, data_dir: str, img_size: int, n: int, frames: int = 20, digits: int = 2,
         budget_gb: float = 4.0) -> SequenceSet:
    """All the training sequences of moving-mnist or smoving-mnist (none held out): data.load's entry."""
    return moving_parts(name, mnist_digits(data_dir), img_size, n, frames, digits, 0, budget_gb)[0]


def sequence_parts(cfg) -> tuple[SequenceSet, SequenceSet | None]:
    """The (training, held-out or None) sequences of a run's config: moving digits split by digit image, or a video
    folder's windows split by clip (holdout counts clips)."""
    if cfg.data in MOVING:
        return moving_parts(cfg.data, mnist_digits(cfg.data_dir), cfg.img_size, cfg.n_points, cfg.frames,
                            cfg.digits, cfg.holdout, cfg.memory_budget_gb)
    clips = video.load_clips(cfg.data[len("video:"):], cfg.img_size, cfg.channels, cfg.frames, cfg.resize)
    train, held = holdout_indices(len(clips.clips), cfg.holdout) if cfg.holdout else (None, None)
    return clips.sequences(train), (clips.sequences(held) if held is not None else None)


def frames_to_stored(x: torch.Tensor, img_size: int) -> torch.Tensor:
    """uint8 (N, T, C, h, w) -> (N, T, C, img_size, img_size), antialiased (a user's context file)."""
    if x.shape[-1] == x.shape[-2] == img_size:
        return x.contiguous()
    n, t = x.shape[:2]
    flat = TF.resize(x.flatten(0, 1), [img_size, img_size], antialias=True)
    return flat.reshape(n, t, *flat.shape[1:]).contiguous()
