"""Super-resolution networks after SRGAN (Ledig et al. 2017), small enough for digits on a CPU.

G: a low-resolution image (B, C, h, w) -> (B, C, s*h, s*w): a convolution, residual blocks, then one sub-pixel
convolution (conv + PixelShuffle, Shi et al. 2016) per octave of the scale s. Two departures from SRGAN, both from
later work: no batch norm in the residual blocks (EDSR, Lim et al. 2017), and G learns the residual over bicubic
upscaling (VDSR, Kim et al. 2016), so that it starts where bicubic is and trains in minutes.
D: strided convolutions with batch norm and LeakyReLU, as SRGAN's, then global average pooling and one logit, so it
judges high-resolution images of any size. Both are fully convolutional. Shapes are for 7 -> 28 pixels, width w.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gankit.models.base import DiscriminatorBase


def upscale_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of images in [-1, 1], clamped back into that range: the baseline, and G's starting point."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling (what makes the low-resolution inputs of training and evaluation)."""
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.PReLU(width), nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 1, width: int = 32, blocks: int = 4):
        super().__init__()
        self.spec = dict(arch="srresnet", scale=scale, channels=channels, width=width, blocks=blocks)
        self.scale, self.channels = scale, channels
        octaves = int(round(math.log2(scale)))
        if 2**octaves != scale:
            raise ValueError(f"scale must be a power of 2, got {scale}")
        self.head = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.PReLU(width))      # (w, 7, 7)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, 1, 1))
        up = []
        for _ in range(octaves):                                                              # (w, 14, 14) (w, 28, 28)
            up += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*up)
        self.tail = nn.Conv2d(width, channels, 3, 1, 1)                                       # (C, 28, 28)
        nn.init.zeros_(self.tail.weight)   # G starts as bicubic upscaling exactly
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, h, w) in [-1, 1] -> (B, C, s*h, s*w), unclamped (the content loss sees the raw values)."""
        h = self.head(x)
        h = h + self.body(h)
        return upscale_bicubic(x, self.scale) + self.tail(self.up(h))


class Discriminator(DiscriminatorBase):
    """D(x) -> logits (B,); with_features=True also gives its pooled features (B, 4w)."""

    def __init__(self, channels: int = 1, width: int = 16, vbn_ref_size: int = 64):
        spec = dict(arch="srresnet", channels=channels, width=width)
        super().__init__(spec, (channels, 1, 1), torch.float32, vbn_ref_size, 0)
        w = width

        def block(c_in, c_out, stride):
            return [nn.Conv2d(c_in, c_out, 4 if stride == 2 else 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                    nn.LeakyReLU(0.2, inplace=True)]

        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),   # (w, 28, 28)
            *block(w, w, 2),                                                   # (w, 14, 14)
            *block(w, 2 * w, 1), *block(2 * w, 2 * w, 2),                      # (2w, 7, 7)
            *block(2 * w, 4 * w, 1),                                           # (4w, 7, 7)
            nn.AdaptiveAvgPool2d(1), nn.Flatten())                             # (4w,)
        self.out = nn.Linear(4 * w, 1)
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        phi = self.body(x)
        return self.out(phi).squeeze(1), phi
