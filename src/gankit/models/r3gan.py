"""A residual G and D without normalisation layers, as R3GAN builds them (Huang et al. 2024, "The GAN is dead; long
live the GAN!"), for square images of any size s0 * 2^k (s0 from 4 to 7, k >= 1): 8, 16, 28, 32, 64, 128 ...

G: z (and a label embedding) -> a learned s0 x s0 basis scaled per channel by a linear map of z, then per resolution
   `blocks` residual blocks, a 1x1 channel change and a 2x bilinear upsampling; a 1x1 convolution to the image.
D: the mirror image: a 1x1 convolution from the image, per resolution `blocks` residual blocks and a 2x average
   pooling (the survey's "average pooling, no sparse gradients"), then a depthwise s0 x s0 basis to a feature vector
   and one logit (plus the projection term <embed(y), f> for a conditional D).
Each residual block is 1x1 -> grouped 3x3 -> 1x1 with biased leaky ReLUs, its last layer initialised at zero and the
others scaled by L^(-1/4) (L: blocks in the network), so every block starts as the identity and the network's output
variance does not grow with depth (R3GAN's "fix-up" initialisation). No batch or any other norm: D scores each image
on its own, which R1 and R2 assume.

Widths: `width` channels at every resolution up to 16 px, halved per octave above (32 px: width / 2), at least 16.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gankit.models.base import DiscriminatorBase, GeneratorBase
from gankit.models.blocks import MinibatchStd, pack

SLOPE = 0.2
ACT_GAIN = math.sqrt(2 / (1 + SLOPE**2))  # keeps unit variance through a leaky ReLU (He et al. 2015)
EXPANSION = 2                             # a block's inner width: EXPANSION x its channels
GROUP_CHANNELS = 16                       # channels per group of a block's 3x3 convolution (ResNeXt's cardinality)


def stages(img_size: int) -> tuple[int, int]:
    """(s0, k): img_size = s0 * 2^k with 4 <= s0 <= 7 and k >= 1; a ValueError for sizes this model cannot build."""
    s0, k = img_size, 0
    while s0 > 7 and s0 % 2 == 0:
        s0, k = s0 // 2, k + 1
    if not 4 <= s0 <= 7 or k < 1:
        raise ValueError(f"r3gan needs img_size s0 * 2^k with s0 from 4 to 7 and k >= 1 (8, 16, 28, 32, 64, ...), "
                         f"got {img_size}")
    return s0, k


def widths(img_size: int, width: int) -> list[int]:
    """Channels at each resolution s0, 2 s0, ..., img_size."""
    s0, k = stages(img_size)
    return [max(16, min(width, width * 16 // (s0 * 2**i))) for i in range(k + 1)]


def _msr(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """He initialisation with a gain: weights ~ N(0, gain / sqrt(fan_in)), biases 0 (R3GAN's MSRInitializer)."""
    fan_in = layer.weight[0].numel()
    with torch.no_grad():
        layer.weight.normal_(0, gain / math.sqrt(fan_in))
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()
    return layer


class BiasedAct(nn.Module):
    """x + b, then leaky ReLU: the bias a convolution without its own bias would carry."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), SLOPE)


class ResBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))): (C, H, W) -> (C, H, W)."""

    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        inner = channels * EXPANSION
        gain = ACT_GAIN * n_blocks ** (-1 / 4)  # three layers per block: L^(-1 / (2 * 3 - 2))
        self.conv1 = _msr(nn.Conv2d(channels, inner, 1, bias=False), gain)
        self.conv2 = _msr(nn.Conv2d(inner, inner, 3, padding=1, groups=max(1, inner // GROUP_CHANNELS),
                                    bias=False), gain)
        self.conv3 = _msr(nn.Conv2d(inner, channels, 1, bias=False), 0.0)  # the block starts as the identity
        self.act1, self.act2 = BiasedAct(inner), BiasedAct(inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))


class Generator(GeneratorBase):
    def __init__(self, z_dim: int = 64, img_size: int = 32, channels: int = 1, width: int = 64, blocks: int = 1,
                 c_dim: int = 0, c_embed_dim: int = 16, vbn_ref_size: int = 64):
        spec = dict(arch="r3gan", z_dim=z_dim, img_size=img_size, channels=channels, width=width, blocks=blocks,
                    c_dim=c_dim, c_embed_dim=c_embed_dim, vbn_ref_size=vbn_ref_size)
        super().__init__(spec, z_dim, vbn_ref_size, c_dim)
        self.img_size, self.channels = img_size, channels
        s0, k = stages(img_size)
        ch = widths(img_size, width)
        n_blocks = blocks * (k + 1)
        self.embed = _msr(nn.Linear(c_dim, c_embed_dim, bias=False)) if c_dim else None
        in_dim = z_dim + (c_embed_dim if c_dim else 0)
        self.basis = nn.Parameter(torch.randn(ch[0], s0, s0))                   # (ch0, s0, s0)
        self.to_basis = _msr(nn.Linear(in_dim, ch[0], bias=False))              # per-channel scale of the basis
        self.stages = nn.ModuleList()
        for i in range(k + 1):                                                  # s0, 2 s0, ..., img_size
            layers = [ResBlock(ch[i], n_blocks) for _ in range(blocks)]
            if i < k:                                                           # (ch_i, s, s) -> (ch_i+1, 2s, 2s)
                layers += [_msr(nn.Conv2d(ch[i], ch[i + 1], 1, bias=False)) if ch[i + 1] != ch[i] else nn.Identity(),
                           nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
            self.stages.append(nn.Sequential(*layers))
        self.to_img = _msr(nn.Conv2d(ch[-1], channels, 1))                      # (ch_k, S, S) -> (channels, S, S)
        self._register_reference()

    def _forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:  # the label, one-hot through a linear map: the second input of Mirza & Osindero
            z = torch.cat([z, self.embed(F.one_hot(y, self.c_dim).to(z.dtype))], 1)
        h = self.basis[None] * self.to_basis(z)[:, :, None, None]               # (B, ch0, s0, s0)
        for stage in self.stages:
            h = stage(h)
        return self.to_img(h)  # no tanh, as in R3GAN: sampling clamps to [-1, 1]


class Discriminator(DiscriminatorBase):
    def __init__(self, img_size: int = 32, channels: int = 1, width: int = 64, blocks: int = 1, c_dim: int = 0,
                 c_embed_dim: int = 16, mbstd: bool = False, pack: int = 1, vbn_ref_size: int = 64):
        spec = dict(arch="r3gan", img_size=img_size, channels=channels, width=width, blocks=blocks, c_dim=c_dim,
                    c_embed_dim=c_embed_dim, mbstd=mbstd, pack=pack, vbn_ref_size=vbn_ref_size)
        super().__init__(spec, (channels, img_size, img_size), torch.float32, vbn_ref_size, c_dim)
        self.pack = pack
        s0, k = stages(img_size)
        ch = widths(img_size, width)[::-1]                                      # img_size, ..., s0
        n_blocks = blocks * (k + 1)
        self.from_img = _msr(nn.Conv2d(channels * pack, ch[0], 1))              # (pack C, S, S) -> (ch, S, S)
        self.stages = nn.ModuleList()
        for i in range(k + 1):
            layers = [ResBlock(ch[i], n_blocks) for _ in range(blocks)]
            if i < k:                                                           # (ch_i, s, s) -> (ch_i+1, s/2, s/2)
                layers += [nn.AvgPool2d(2),
                           _msr(nn.Conv2d(ch[i], ch[i + 1], 1, bias=False)) if ch[i + 1] != ch[i] else nn.Identity()]
            self.stages.append(nn.Sequential(*layers))
        self.mbstd = MinibatchStd() if mbstd else None
        c_last = ch[-1] + int(mbstd)
        self.basis = _msr(nn.Conv2d(c_last, c_last, s0, groups=c_last, bias=False))  # (c, s0, s0) -> (c, 1, 1)
        self.out = _msr(nn.Linear(c_last, 1))
        self.project = _msr(nn.Linear(c_dim, c_last, bias=False), 1 / math.sqrt(c_last)) if c_dim else None
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        h = self.from_img(pack(x, self.pack))
        for stage in self.stages:
            h = stage(h)                                                        # -> (B / pack, ch, s0, s0)
        if self.mbstd is not None:
            h = self.mbstd(h)
        f = self.basis(h).flatten(1)                                            # (B / pack, c)
        logit = self.out(f).squeeze(1)
        if self.project is not None:  # projection D (Miyato & Koyama 2018): + <embed(y), f>
            logit = logit + (self.project(F.one_hot(y, self.c_dim).to(f.dtype)) * f).sum(1)
        return logit, f
