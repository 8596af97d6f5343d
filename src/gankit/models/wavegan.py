"""WaveGAN (Donahue, McAuley & Puckette 2019): a DCGAN made one-dimensional, for raw waveforms.

G: z -> a dense layer to (16w, L0), then five transposed 1-D convolutions of kernel 25 and stride 4 (each 4x longer)
to (1, audio_length), tanh at the end; L0 = audio_length / 1024 (16 for the paper's 16,384 samples).
D: five strided 1-D convolutions of kernel 25 and stride 4, LeakyReLU(0.2), with phase shuffle (n=2) after each but
the last, then a linear layer to one logit. The paper's width is w = 64; gankit's presets scale it down for CPUs.
Shapes below are for audio_length 16384 and width w.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gankit.models.base import DiscriminatorBase, GeneratorBase
from gankit.models.blocks import DHead, VirtualBatchNorm, make_act, pack

KERNEL, STRIDE, LAYERS = 25, 4, 5     # the paper's: each layer changes the length 4x
PHASE_SHUFFLE = 2                     # n: D's activations are shifted by -n..n samples between layers


def _length0(audio_length: int) -> int:
    l0, rem = divmod(audio_length, STRIDE**LAYERS)
    if rem or l0 < 1:
        raise ValueError(f"wavegan needs audio_length a multiple of {STRIDE**LAYERS}, got {audio_length}")
    return l0


def make_norm_1d(kind: str, channels: int) -> nn.Module:
    """The config's norms for (B, C, L) feature maps (blocks.make_norm builds 2-D ones)."""
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "virtual_batch":
        return VirtualBatchNorm(channels)
    if kind == "instance":
        return nn.InstanceNorm1d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind in ("none", "spectral"):
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def spectral_norm_all(module: nn.Module) -> None:
    """Spectral normalisation of every 1-D conv and linear weight (blocks.apply_spectral_norm covers 2-D convs)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv1d, nn.Linear, nn.Embedding)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_norm_all(child)


def phase_shuffle(x: torch.Tensor, n: int) -> torch.Tensor:
    """WaveGAN's phase shuffle: each example (B, C, L) shifted in time by its own k ~ U{-n..n}, the gap filled by
    reflection, so D cannot tell real from fake by the phase of the periodic artefacts of transposed convolution.
    Written here because torch has no such layer; draws from the global RNG (the training seed's)."""
    if n == 0:
        return x
    b, _, length = x.shape
    k = torch.randint(-n, n + 1, (b,), device=x.device)                        # (B,) shifts
    padded = F.pad(x, (n, n), mode="reflect")                                  # (B, C, L + 2n)
    idx = torch.arange(length, device=x.device)[None, :] + (n - k)[:, None]    # (B, L): out[t] = x[t - k]
    return padded.gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))


class PhaseShuffle(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return phase_shuffle(x, self.n) if self.training else x


def init_weights(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as the paper's TensorFlow layers start (their default initialiser),
    label embeddings N(0, 1). DCGAN's N(0, 0.02) is too small for five 25-tap layers: D's signal shrank about 3x per
    layer (std 0.0004 after the fifth on noise of std 0.1) and its logits started near 1e-4, so D never began to
    discriminate (D(x) = D(G(z)) = 0.5 through a whole run)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 1.0)


class Generator(GeneratorBase):
    """G(z, y) -> waveforms (B, 1, audio_length) in [-1, 1]; `waveform` gives them as (B, T) for listening."""

    def __init__(self, z_dim: int = 100, audio_length: int = 16384, width: int = 64, norm: str = "none",
                 act: str = "relu", slope: float = 0.2, c_dim: int = 0, c_embed_dim: int = 16,
                 vbn_ref_size: int = 64, sample_rate: int = 16000):
        spec = dict(arch="wavegan", z_dim=z_dim, audio_length=audio_length, width=width, norm=norm, act=act,
                    slope=slope, c_dim=c_dim, c_embed_dim=c_embed_dim, vbn_ref_size=vbn_ref_size,
                    sample_rate=sample_rate)
        super().__init__(spec, z_dim, vbn_ref_size, c_dim)
        self.audio_length, self.sample_rate = audio_length, sample_rate
        self.out_shape = (1, audio_length)
        self.l0 = _length0(audio_length)
        ch = [width * 2 ** (LAYERS - 1 - i) for i in range(LAYERS)]   # 16w, 8w, 4w, 2w, w
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim else None
        in_dim = z_dim + (c_embed_dim if c_dim else 0)
        bias = norm == "none"
        self.dense = nn.Linear(in_dim, ch[0] * self.l0)             # (B, in_dim) -> (B, 16w * 16)
        layers = [make_norm_1d(norm, ch[0]), make_act(act, slope)]   # as (B, 16w, 16)
        for i in range(1, LAYERS):                                   # -> (8w, 64) (4w, 256) (2w, 1024) (w, 4096)
            layers += [nn.ConvTranspose1d(ch[i - 1], ch[i], KERNEL, STRIDE, padding=11, output_padding=1,
                                          bias=bias), make_norm_1d(norm, ch[i]), make_act(act, slope)]
        layers += [nn.ConvTranspose1d(ch[-1], 1, KERNEL, STRIDE, padding=11, output_padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)                            # -> (1, 16384) in [-1, 1]
        init_weights(self)
        self._register_reference()

    def _forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)                     # (B, z_dim + c_embed_dim)
        return self.net(self.dense(z).view(z.shape[0], -1, self.l0))

    def waveform(self, x: torch.Tensor) -> torch.Tensor:
        """G's output (B, 1, T) as waveforms (B, T)."""
        return x[:, 0]


class Discriminator(DiscriminatorBase):
    def __init__(self, audio_length: int = 16384, width: int = 64, norm: str = "none", act: str = "leaky_relu",
                 slope: float = 0.2, c_dim: int = 0, cond: str = "none", c_embed_dim: int = 16, mbstd: bool = False,
                 mbdisc: int = 0, pack: int = 1, vbn_ref_size: int = 64, phase_shuffle: int = PHASE_SHUFFLE):
        spec = dict(arch="wavegan", audio_length=audio_length, width=width, norm=norm, act=act, slope=slope,
                    c_dim=c_dim, cond=cond, c_embed_dim=c_embed_dim, mbstd=mbstd, mbdisc=mbdisc, pack=pack,
                    vbn_ref_size=vbn_ref_size, phase_shuffle=phase_shuffle)
        super().__init__(spec, (1, audio_length), torch.float32, vbn_ref_size, c_dim)
        self.pack = pack
        l0 = _length0(audio_length)
        ch = [width * 2**i for i in range(LAYERS)]                   # w, 2w, 4w, 8w, 16w
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim and cond == "concat" else None
        c_in = pack + (c_embed_dim if self.embed is not None else 0)
        bias = norm in ("none", "spectral")
        layers = [nn.Conv1d(c_in, ch[0], KERNEL, STRIDE, padding=11), make_act(act, slope)]  # -> (w, 4096)
        for i in range(1, LAYERS):                                   # -> (2w, 1024) (4w, 256) (8w, 64) (16w, 16)
            layers += [PhaseShuffle(phase_shuffle), nn.Conv1d(ch[i - 1], ch[i], KERNEL, STRIDE, padding=11,
                                                              bias=bias), make_norm_1d(norm, ch[i]),
                       make_act(act, slope)]
        self.body = nn.Sequential(*layers)
        self.head = DHead((ch[-1], l0), mbstd, mbdisc, c_dim, projection=cond == "projection")
        init_weights(self)
        if norm == "spectral":
            spectral_norm_all(self)
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        if self.embed is not None:                                   # the label as extra input channels (B, e, T)
            x = torch.cat([x, self.embed(y)[:, :, None].expand(-1, -1, x.shape[-1])], 1)
        return self.head(self.body(pack(x, self.pack)), y)           # (B / pack, 16w, 16) -> logits
