"""Recordings (data: audio:PATH, a folder of sound files; data: fsdd, the Free Spoken Digit Dataset) as an in-memory
`AudioDataset`: float32 waveforms (N, 1, T) in [-1, 1] at the run's sample_rate, each audio_length samples long.

What reading does to the clips, said in one line of log (never silently):
    resampling  to sample_rate by scipy's polyphase filter (resample_poly), from each file's own rate
    channels    stereo and multi-channel files are mixed down to mono (their mean)
    cropping    a clip longer than audio_length keeps its loudest window of audio_length samples (speech clips
                are trimmed of silence, so this keeps the word, wherever it sits)
    padding     a shorter clip is centred between zeros
    amplitude   a clip whose samples exceed [-1, 1] (a float file, or the overshoot of resampling) is scaled down
                to peak 1, and counted; nothing is clipped
Unreadable or empty files are skipped, counted and named (the first few). Class labels come from the top-level
sub-folders, as for image folders (data/folder.py); FSDD's file names `{digit}_{speaker}_{index}.wav` give the digit,
and its own test split (index 0-4) is held out of training for the metrics (`AudioDataset.test`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

from gankit.data.dataset import Dataset, labelled_files, split_indices
from gankit.errors import UserError

log = logging.getLogger("gankit")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")   # what libsndfile (soundfile) reads
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
FSDD_TEST_INDICES = range(5)   # the data set's own convention: recordings 0-4 of each digit and speaker are its test
SHOW_SKIPPED = 3               # unreadable files named in the summary line


@dataclass
class AudioDataset(Dataset):
    """Waveforms x (N, 1, T) float32 in [-1, 1] at sample_rate Hz; `test` is the held-out real split that metrics
    compare samples with (FSDD's own test split), or None (then the data's fixed 20 % split gives one)."""
    sample_rate: int = 16_000
    test: "AudioDataset | None" = None

    @property
    def is_audio(self) -> bool:
        return True

    def subset(self, idx: torch.Tensor) -> "AudioDataset":
        idx = idx.to(self.x.device)
        return AudioDataset(self.name, self.x[idx], None if self.y is None else self.y[idx], list(self.class_names),
                            files=self.files, sample_rate=self.sample_rate, test=self.test)

    def reference(self) -> "AudioDataset":
        """The real clips the metrics' floor is measured on: the test split, else the held-out 20 % of the fixed
        split (data/dataset.py)."""
        if self.test is not None:
            return self.test
        return self.subset(split_indices(len(self))[1])

    def to(self, device) -> "AudioDataset":
        super().to(device)
        return self


@dataclass
class Summary:
    """What reading a set of clips did, for one line of log."""
    sample_rate: int
    length: int
    lengths: list[int] = field(default_factory=list)    # in samples at sample_rate, before cropping or padding
    skipped: list[str] = field(default_factory=list)
    resampled: dict[int, int] = field(default_factory=dict)  # native rate -> clips
    mixed: int = 0
    scaled: list[float] = field(default_factory=list)   # peaks of the clips scaled down to 1

    def line(self, where: str, classes: list[str], labels: list[int] | None) -> str:
        n, sr = len(self.lengths), self.sample_rate
        lengths = np.asarray(self.lengths)
        cropped, padded = lengths[lengths > self.length], lengths[lengths < self.length]
        parts = [f"data: {where}: {n:,} clips read"]
        if self.skipped:
            parts[0] += (f", {len(self.skipped):,} unreadable skipped ({', '.join(self.skipped[:SHOW_SKIPPED])}"
                         f"{', ...' if len(self.skipped) > SHOW_SKIPPED else ''})")
        if classes and labels is not None:
            counts = np.bincount(labels, minlength=len(classes))
            parts.append(f"{len(classes)} classes ({', '.join(f'{c} {k:,}' for c, k in zip(classes, counts))})"
                         if len(classes) <= 10 else f"{len(classes)} classes")
        else:
            parts.append("no class labels (no sub-folder per class)")
        rates = ", ".join(f"{k:,} from {r:,} Hz" for r, k in sorted(self.resampled.items()))
        parts.append(f"{sr:,} Hz" + (f" (resampled: {rates})" if rates else ""))
        if self.mixed:
            parts.append(f"{self.mixed:,} multi-channel mixed down to mono")
        parts.append(f"lengths {lengths.min() / sr:.2f} to {lengths.max() / sr:.2f} s (median "
                     f"{np.median(lengths) / sr:.2f} s) -> {self.length:,} samples ({self.length / sr:.2f} s)")
        parts.append(f"{len(cropped):,} cropped to their loudest window" +
                     (f" (by {(cropped - self.length).mean() / sr:.2f} s on average)" if len(cropped) else ""))
        parts.append(f"{len(padded):,} padded with silence" +
                     (f" (by {(self.length - padded).mean() / sr:.2f} s on average)" if len(padded) else ""))
        if self.scaled:
            parts.append(f"{len(self.scaled):,} exceeded [-1, 1] (peak up to {max(self.scaled):.3g}) and were scaled "
                         "down to peak 1")
        return "; ".join(parts)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A 1-D waveform from `rate` to `target` Hz (scipy's polyphase filter, with its anti-aliasing window)."""
    if rate == target:
        return wave
    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """(t,) -> (length,): the loudest window of a longer clip, a shorter one centred between zeros."""
    t = len(wave)
    if t > length:
        energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
        start = int(np.argmax(energy[length:] - energy[:-length]))   # window sums, starts 0 .. t - length
        return wave[start: start + length]
    left = (length - t) // 2
    return np.pad(wave, (left, length - t - left))


def read_clip(path: str, sample_rate: int, summary: Summary) -> np.ndarray | None:
    """One file as mono float32 at sample_rate, its length not yet fitted; None (counted) when unreadable."""
    try:
        wave, rate = soundfile.read(path, dtype="float32", always_2d=True)    # (t, channels)
    except Exception as e:  # noqa: BLE001: libsndfile raises LibsndfileError, RuntimeError, TypeError, ... for a
        # damaged, foreign or truncated file; each means the same: skip it and say so
        log.debug(f"data: cannot read {path}: {e}")
        summary.skipped.append(Path(path).name)
        return None
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        summary.skipped.append(Path(path).name)
        return None
    if wave.shape[1] > 1:
        summary.mixed += 1
    wave = wave.mean(1)
    if rate != sample_rate:
        summary.resampled[rate] = summary.resampled.get(rate, 0) + 1
        wave = resample(wave, rate, sample_rate)
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if not math.isfinite(peak):
        summary.skipped.append(Path(path).name)
        return None
    if peak > 1.0:
        summary.scaled.append(peak)
        wave = wave / peak
    summary.lengths.append(len(wave))
    return wave


def read_clips(files: list[str], sample_rate: int, length: int) -> tuple[torch.Tensor, list[int], Summary]:
    """(x (n, 1, length) float32, indices into files of the clips read, the summary)."""
    summary, waves, kept = Summary(sample_rate, length), [], []
    for i, path in enumerate(files):
        wave = read_clip(path, sample_rate, summary)
        if wave is not None:
            waves.append(fit_length(wave, length))
            kept.append(i)
    x = torch.from_numpy(np.stack(waves)).unsqueeze(1) if waves else torch.zeros(0, 1, length)
    return x.float(), kept, summary


def list_files(root: Path) -> tuple[list[str], list[int] | None, list[str]]:
    """The sound files under root, sorted; their labels when every file sits in one of >= 2 top-level sub-folders."""
    return labelled_files(root, AUDIO_EXTENSIONS, "sound files", "data: audio:PATH needs a folder of sound files")


def _dataset(name: str, where: str, files: list[str], labels: list[int] | None, classes: list[str],
             sample_rate: int, length: int) -> AudioDataset:
    x, kept, summary = read_clips(files, sample_rate, length)
    if not kept:
        raise UserError(f"data: none of the {len(files):,} sound files in {where} could be read "
                        f"({', '.join(summary.skipped[:SHOW_SKIPPED])}, ...)")
    y = None if labels is None else [labels[i] for i in kept]
    log.info(summary.line(where, classes, y))
    return AudioDataset(name, x, None if y is None else torch.tensor(y, dtype=torch.long), list(classes),
                        files=[Path(files[i]).name for i in kept], sample_rate=sample_rate)


def load_folder(path: str, sample_rate: int, length: int) -> AudioDataset:
    """Every sound file under `path`, searched recursively; top-level sub-folders become class labels."""
    root = Path(path).expanduser()
    files, labels, classes = list_files(root)
    return _dataset(f"audio:{root}", str(root), files, labels, classes, sample_rate, length)


def fsdd_files(data_dir: str) -> tuple[list[str], list[int], list[bool]]:
    """FSDD's recordings under data_dir (or data_dir/recordings): the files, their digits, whether each is in the
    data set's own test split."""
    root = Path(data_dir).expanduser()
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    found = sorted(p for p in folder.glob("*.wav") if FSDD_NAME.match(p.name)) if folder.is_dir() else []
    if not found:
        raise UserError(f"data: fsdd not found in {root}; give --data_dir the folder that holds FSDD's recordings/ "
                        "(files named DIGIT_SPEAKER_INDEX.wav, from github.com/Jakobovski/free-spoken-digit-dataset)")
    parts = [FSDD_NAME.match(p.name).groups() for p in found]
    return [str(p) for p in found], [int(d) for d, _, _ in parts], [int(i) in FSDD_TEST_INDICES for _, _, i in parts]


def load_fsdd(data_dir: str, sample_rate: int, length: int) -> AudioDataset:
    """FSDD's training split (index 5-49), with its test split (index 0-4) as `test`, read the same way."""
    files, digits, is_test = fsdd_files(data_dir)
    classes = [str(d) for d in range(10)]
    split = {part: [i for i, t in enumerate(is_test) if t == (part == "test")] for part in ("train", "test")}
    sets = {part: _dataset("fsdd", f"fsdd {part} split", [files[i] for i in idx], [digits[i] for i in idx],
                           classes, sample_rate, length) for part, idx in split.items()}
    sets["train"].test = sets["test"]
    return sets["train"]
