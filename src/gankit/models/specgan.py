"""SpecGAN (Donahue, McAuley & Puckette 2019): DCGAN (models/dcgan.py) on log-magnitude spectrograms, heard through
Griffin-Lim.

A clip of audio_length samples becomes an S x S image (S = img_size): a short-time Fourier transform with a Hann
window of 2S samples and a hop of audio_length / S, whose S lowest frequency bins (the Nyquist bin is dropped) and
first S frames are kept; the magnitude in dB is mapped from [-DB_RANGE, 0] to [-1, 1] (G ends in tanh). The paper
(S = 128, 16,384 samples) normalises each frequency bin by the data set's mean and deviation instead; a fixed dB
scale needs no statistics of the data, so a generator (or an export) carries all it needs to be heard.

Sound comes back by Griffin-Lim (1984) with Perraudin et al.'s momentum (fast Griffin-Lim, as librosa), written
with torch.stft/istft: torchaudio, which has it, is not a dependency of gankit, and it is a dozen lines.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gankit.models import dcgan

DB_RANGE = 80.0        # dB below full scale mapped to -1; quieter is silence
GRIFFIN_LIM_ITERS = 32
MOMENTUM = 0.99
PHASE_SEED = 0         # Griffin-Lim starts from the same random phases on every call


class Spectrogram(nn.Module):
    """waveforms (B, T) <-> normalised log-magnitude spectrograms (B, 1, S, S) in [-1, 1]."""

    def __init__(self, size: int, audio_length: int):
        super().__init__()
        if audio_length % size:
            raise ValueError(f"spectrogram: audio_length {audio_length} must be a multiple of its size {size}")
        self.size, self.length = size, audio_length
        self.n_fft, self.hop = 2 * size, audio_length // size
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.scale = self.window.sum().item() / 2     # a full-scale sine of a bin's frequency -> magnitude 1 (0 dB)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> complex (B, S + 1, S + 1)."""
        return torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=self.length)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) or (B, T) -> (B, 1, S, S)."""
        mag = self.stft(wave.reshape(-1, self.length).float()).abs()[:, : self.size, : self.size] / self.scale
        db = 20 * torch.log10(mag.clamp_min(10 ** (-DB_RANGE / 20)))
        return (db / (DB_RANGE / 2) + 1).clamp(-1, 1).unsqueeze(1)

    def magnitude(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [-1, 1] -> linear magnitudes (B, S + 1, S + 1): the Nyquist bin and last frame as
        silence and a copy of the frame before."""
        db = (image[:, 0].float().clamp(-1, 1) - 1) * (DB_RANGE / 2)
        mag = 10 ** (db / 20) * self.scale
        mag = torch.where(image[:, 0] <= -1, torch.zeros_like(mag), mag)       # the floor is silence
        mag = torch.cat([mag, torch.zeros_like(mag[:, :1])], 1)                  # + Nyquist bin
        return torch.cat([mag, mag[:, :, -1:]], 2)                               # + last frame

    @torch.no_grad()
    def invert(self, image: torch.Tensor, iters: int = GRIFFIN_LIM_ITERS) -> torch.Tensor:
        """(B, 1, S, S) -> waveforms (B, T) in [-1, 1] by fast Griffin-Lim."""
        mag = self.magnitude(image)
        gen = torch.Generator().manual_seed(PHASE_SEED)
        phase = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=gen)).to(mag.device)
        previous = torch.zeros_like(phase)
        for _ in range(iters):
            rebuilt = self.stft(self.istft(mag * phase))
            accelerated = rebuilt - (MOMENTUM / (1 + MOMENTUM)) * previous
            phase = accelerated / accelerated.abs().clamp_min(1e-8)
            previous = rebuilt
        return self.istft(mag * phase).clamp(-1, 1)


def _checked(size: int, audio_length: int) -> Spectrogram:
    """The spectrogram of a SpecGAN: its frames overlap (hop <= window / 2), so that Griffin-Lim can invert it."""
    if audio_length % size or audio_length > size * size:
        raise ValueError(f"specgan: audio_length {audio_length} must be a multiple of img_size {size} and at "
                         f"most {size * size}")
    return Spectrogram(size, audio_length)


class Generator(dcgan.Generator):
    """DCGAN's G making spectrograms (B, 1, S, S); `waveform` hears them, `represent` makes them of waveforms."""

    def __init__(self, z_dim: int = 100, img_size: int = 128, width: int = 64, norm: str = "batch",
                 act: str = "relu", slope: float = 0.2, up: str = "deconv", c_dim: int = 0, c_embed_dim: int = 16,
                 vbn_ref_size: int = 64, audio_length: int = 16384, sample_rate: int = 16000):
        super().__init__(z_dim, img_size, 1, width, norm, act, slope, up, c_dim, c_embed_dim, vbn_ref_size)
        self.spec = {**self.spec, "arch": "specgan", "audio_length": audio_length, "sample_rate": sample_rate}
        del self.spec["channels"]
        self.audio_length, self.sample_rate = audio_length, sample_rate
        self.spectrogram = _checked(img_size, audio_length)

    def represent(self, wave: torch.Tensor) -> torch.Tensor:
        """Real waveforms (B, 1, T) as D sees them, and as G makes them: (B, 1, S, S)."""
        return self.spectrogram(wave)

    def waveform(self, x: torch.Tensor) -> torch.Tensor:
        """G's spectrograms (B, 1, S, S) as waveforms (B, T), by Griffin-Lim."""
        return self.spectrogram.to(x.device).invert(x)


class Discriminator(dcgan.Discriminator):
    """DCGAN's D on spectrograms (B, 1, S, S)."""

    def __init__(self, img_size: int = 128, width: int = 64, norm: str = "batch", act: str = "leaky_relu",
                 slope: float = 0.2, down: str = "strided", c_dim: int = 0, cond: str = "none", c_embed_dim: int = 16,
                 mbstd: bool = False, mbdisc: int = 0, pack: int = 1, vbn_ref_size: int = 64,
                 audio_length: int = 16384):
        super().__init__(img_size, 1, width, norm, act, slope, down, c_dim, cond, c_embed_dim, mbstd, mbdisc, pack,
                         vbn_ref_size)
        self.spec = {**self.spec, "arch": "specgan", "audio_length": audio_length}
        del self.spec["channels"]
        self.spectrogram = _checked(img_size, audio_length)

    def set_reference(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Virtual batch norm's reference batch, given as waveforms (B, 1, T) or as spectrograms."""
        super().set_reference(self.spectrogram(x) if x.dim() == 3 else x, y)
