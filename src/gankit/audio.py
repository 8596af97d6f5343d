"""Recordings a person can hear and see: .wav files (soundfile, 16-bit PCM), FILE.npz of waveforms, spectrogram
sheets (PNG, matplotlib) and TensorBoard audio.

An audio generator (models/wavegan.py, models/specgan.py) carries `sample_rate` and `waveform(x)`, which turns its
output (a waveform, or a spectrogram heard through Griffin-Lim) into waveforms (B, T) in [-1, 1]; everything here
works on those.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image

from gankit import outputs
from gankit.errors import UserError

SHEET_COLUMNS = 8
GAP_S = 0.15          # silence between the clips of one TensorBoard entry
TB_CLIPS = 10         # clips joined into it
DB_RANGE = 80.0       # a sheet shows magnitudes from -80 dB to 0 dB of full scale


def is_audio(G: torch.nn.Module) -> bool:
    """Whether G makes recordings (it can say how they sound)."""
    return hasattr(G, "waveform") and hasattr(G, "sample_rate")


@torch.no_grad()
def waveforms(G: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """G's outputs x (B, ...) as waveforms (B, T) in [-1, 1], on the CPU."""
    device = next(G.parameters()).device
    return torch.cat([G.waveform(c.to(device)).float().cpu() for c in x.split(batch_size)]).clamp(-1, 1)


def write_wav(path: Path, wave: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """One clip (T,) in [-1, 1] as 16-bit PCM .wav."""
    _write_wav(str(path), wave, sample_rate)
    return Path(path)


def wav_bytes(wave: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
    """One clip (T,) in [-1, 1] as the bytes of the .wav file `write_wav` writes (what a page's player plays)."""
    buf = io.BytesIO()
    _write_wav(buf, wave, sample_rate)
    return buf.getvalue()


def _write_wav(target, wave, sample_rate: int) -> None:
    w = np.asarray(wave, dtype=np.float32).clip(-1, 1)   # tanh's output already lies in [-1, 1]
    soundfile.write(target, w, sample_rate, subtype="PCM_16", format="WAV")


def log_spectrogram(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(T,) -> dB of full scale (F, frames), Hann windows of 32 ms with 75 % overlap."""
    n_fft = 1 << max(6, round(np.log2(0.032 * sample_rate)))
    window = torch.hann_window(n_fft)
    mag = torch.stft(wave.float(), n_fft, n_fft // 4, window=window, return_complex=True).abs() / (window.sum() / 2)
    return 20 * torch.log10(mag.clamp_min(10 ** (-DB_RANGE / 20)))


def spectrogram_image(wave: torch.Tensor, sample_rate: int, height: int = 96) -> Image.Image:
    """One clip's spectrogram (time across, low frequencies at the bottom) as an RGB image in the sheets' colour map,
    `height` pixels tall and as wide as the clip has frames (at least `height`)."""
    import matplotlib

    spec = log_spectrogram(torch.as_tensor(wave), sample_rate).numpy()[::-1]             # (F, frames), top = high
    level = ((spec + DB_RANGE) / DB_RANGE).clip(0, 1)
    rgb = (matplotlib.colormaps["magma"](level)[..., :3] * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    return im.resize((max(height, im.width), height), Image.Resampling.BILINEAR)


def save_clips(waves: torch.Tensor, sample_rate: int, folder: Path, titles: list[str] | None = None) -> list[Path]:
    """folder/NN.wav and folder/NN.png (its spectrogram), one pair per clip, and folder/clips.json (the titles, e.g.
    the class each clip was asked to be): what the HTML report plays."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, wave in enumerate(waves):
        wav = folder / f"{i:02d}.wav"
        paths.append(outputs.write_atomic(wav, lambda tmp: write_wav(tmp, wave.numpy(), sample_rate)))
        outputs.write_atomic(folder / f"{i:02d}.png",
                             lambda tmp: spectrogram_image(wave, sample_rate).save(tmp, format="PNG"))
    record = {"sample_rate": int(sample_rate), "titles": titles or [str(i) for i in range(len(paths))]}
    outputs.write_atomic(folder / "clips.json", lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return paths


def save_sheet(waves: torch.Tensor, sample_rate: int, path: Path, titles: list[str] | None = None,
               heading: str = "", columns: int = SHEET_COLUMNS) -> Path:
    """A PNG of the clips' spectrograms (time across, frequency up, `columns` to a row), each titled (e.g. by
    class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = waves.shape[0]
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.4 * rows + 0.4), dpi=90, squeeze=False)
    seconds, top = waves.shape[-1] / sample_rate, sample_rate / 2000
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            spec = log_spectrogram(waves[i], sample_rate).numpy()
            ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=-DB_RANGE, vmax=0,
                      extent=(0, seconds, 0, top))
            if titles:
                ax.set_title(titles[i], fontsize=7, pad=2)
    fig.suptitle(heading + f"  ({seconds:.2f} s, 0-{top:g} kHz, -{DB_RANGE:g}..0 dB)", fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, format="png")
    plt.close(fig)
    with Image.open(path) as im:   # 128 colours: a quarter of the bytes, no visible change in a colour map
        im.convert("RGB").quantize(128).save(path, format="PNG", optimize=True)
    return Path(path)


def titles(labels: torch.Tensor | None, class_names: list[str]) -> list[str] | None:
    if labels is None:
        return None
    return [class_names[int(k)] if int(k) < len(class_names) else str(int(k)) for k in labels]


def add_audio(rec, tag: str, waves: torch.Tensor, step: int, sample_rate: int) -> None:
    """The first TB_CLIPS clips, joined by short silences, as one entry of TensorBoard's Audio tab (a run.Recorder's
    writer; none on processes other than the main one)."""
    writer = getattr(rec, "writer", None)
    if writer is None:
        return
    gap = torch.zeros(int(GAP_S * sample_rate))
    joined = torch.cat([torch.cat([w, gap]) for w in waves[:TB_CLIPS]])
    writer.add_audio(tag, joined.clamp(-1, 1)[None], step, sample_rate=sample_rate)


def clips_folder(run_dir: Path, step: int) -> Path:
    """samples/clips/step-NNNNNNN/: the first clips of that step's sheet, to listen to."""
    return Path(run_dir) / "samples" / "clips" / f"step-{step:07d}"


def save_pictures(waves: torch.Tensor, labels: torch.Tensor | None, class_names: list[str], sample_rate: int,
                  run_dir: Path, step: int, rec=None) -> Path:
    """samples/step-NNNNNNN.png, a spectrogram sheet of the fixed noise's clips, the first TB_CLIPS of them as .wav
    files with their spectrograms (clips_folder), and the clips in TensorBoard."""
    path = Path(run_dir) / "samples" / f"step-{step:07d}.png"
    names = titles(labels, class_names)
    save_sheet(waves, sample_rate, path, names, f"step {step}")
    save_clips(waves[:TB_CLIPS], sample_rate, clips_folder(run_dir, step), names and names[:TB_CLIPS])
    if rec is not None:
        rec.image("samples", path, step)
        add_audio(rec, "samples", waves, step, sample_rate)
    return path


def save_reals(waves: torch.Tensor, sample_rate: int, run_dir: Path, rec=None) -> Path:
    """reals.png: spectrograms of real training clips as the model is given them, and the clips in TensorBoard."""
    path = Path(run_dir) / "reals.png"
    outputs.check_new("run", path)
    save_sheet(waves, sample_rate, path, heading="real clips")
    if rec is not None:
        rec.image("reals", path, 0)
        add_audio(rec, "reals", waves, 0, sample_rate)
    return path


def sample_paths(n: int, labels: torch.Tensor | None, out: Path) -> list[Path]:
    """FILE.npz, FILE.png (a spectrogram sheet), or in a folder one .wav per clip."""
    if out.suffix in (".npz", ".png"):
        return [out]
    if out.suffix:
        raise UserError(f"sample: --out must end in .npz or .png, or be a folder (of .wav files), got {out}")
    return [out / (f"{i:05d}" + (f"_class{int(labels[i])}" if labels is not None else "") + ".wav") for i in range(n)]


def save_samples(G: torch.nn.Module, class_names: list[str], x: torch.Tensor, labels: torch.Tensor | None,
                 out: Path, force: bool = False) -> Path:
    """FILE.npz: `audio` float32 (N, T) in [-1, 1], `sample_rate`, and `labels` when conditional; FILE.png: a
    spectrogram sheet; a folder: one 16-bit .wav per clip. Existing files are refused unless force."""
    out, rate = Path(out), int(G.sample_rate)
    paths = sample_paths(x.shape[0], labels, out)
    outputs.check_new("sample", *paths, force=force)
    outputs.out_folder("sample", paths[0].parent)
    waves = waveforms(G, x)
    if out.suffix == ".npz":
        arrays = {"audio": waves.numpy().astype(np.float32), "sample_rate": np.int64(rate)}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        return outputs.write_atomic(out, lambda tmp: np.savez_compressed(tmp, **arrays))
    if out.suffix == ".png":
        return outputs.write_atomic(out, lambda tmp: save_sheet(waves, rate, tmp, titles(labels, class_names)))
    for wave, path in zip(waves, paths):
        outputs.write_atomic(path, lambda tmp: write_wav(tmp, wave.numpy(), rate))
    return out


def save_folder_sheet(folder: str | Path, path: str | Path) -> Path:
    """A spectrogram sheet of the .wav files in a folder (as `gankit sample RUN --out FOLDER` writes them), each
    titled by its file name: to see what a folder of clips sounds like."""
    files = sorted(Path(folder).glob("*.wav"))
    if not files:
        raise UserError(f"audio: no .wav files in {folder}")
    clips = [soundfile.read(str(f), dtype="float32") for f in files]
    length = max(len(w) for w, _ in clips)
    waves = torch.stack([torch.from_numpy(np.pad(w, (0, length - len(w)))) for w, _ in clips])
    return save_sheet(waves, clips[0][1], Path(path), [f.stem for f in files], Path(folder).name)
