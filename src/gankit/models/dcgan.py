"""DCGAN (Radford et al. 2015) for square images of 16, 32, 64 or 128 pixels.

G: z -> 4x4 by a transposed conv, then one 2x upsampling per octave to img_size, tanh at the end.
D: one 2x downsampling per octave to 4x4 (no norm on the first layer), then a linear layer to one logit.
Widths double per octave as in pytorch/examples' dcgan; shapes below are for img_size 64 and width w.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gankit.models.base import DiscriminatorBase, GeneratorBase
from gankit.models.blocks import (DHead, apply_spectral_norm, init_dcgan_weights, make_act, make_down, make_norm,
                                  make_up, pack)


def _octaves(img_size: int) -> int:
    """Number of 2x resamplings between 4x4 and img_size x img_size."""
    k = int(round(math.log2(img_size))) - 2
    if k < 2 or 4 * 2**k != img_size:
        raise ValueError(f"dcgan needs img_size 16, 32, 64 or 128, got {img_size}")
    return k


class Generator(GeneratorBase):
    def __init__(self, z_dim: int = 100, img_size: int = 64, channels: int = 3, width: int = 64,
                 norm: str = "batch", act: str = "relu", slope: float = 0.2, up: str = "deconv", c_dim: int = 0,
                 c_embed_dim: int = 16, vbn_ref_size: int = 64):
        spec = dict(arch="dcgan", z_dim=z_dim, img_size=img_size, channels=channels, width=width, norm=norm, act=act,
                    slope=slope, up=up, c_dim=c_dim, c_embed_dim=c_embed_dim, vbn_ref_size=vbn_ref_size)
        super().__init__(spec, z_dim, vbn_ref_size, c_dim)
        self.img_size, self.channels = img_size, channels
        k = _octaves(img_size)
        ch = [width * 2 ** (k - 1 - i) for i in range(k)]  # 64 px: 8w, 4w, 2w, w at 4, 8, 16, 32 px
        bias = norm == "none"
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim else None
        in_dim = z_dim + (c_embed_dim if c_dim else 0)
        layers = [nn.ConvTranspose2d(in_dim, ch[0], 4, 1, 0, bias=bias),  # (in_dim, 1, 1) -> (8w, 4, 4)
                  make_norm(norm, ch[0], True), make_act(act, slope)]
        for i in range(1, k):                                             # -> (4w, 8, 8) (2w, 16, 16) (w, 32, 32)
            layers += [make_up(up, ch[i - 1], ch[i], bias), make_norm(norm, ch[i], True), make_act(act, slope)]
        layers += [make_up(up, ch[-1], channels, True), nn.Tanh()]      # -> (channels, 64, 64) in [-1, 1]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)
        self._register_reference()

    def _forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)          # (B, z_dim + c_embed_dim): Mirza & Osindero's second input
        return self.net(z[:, :, None, None])


class Discriminator(DiscriminatorBase):
    def __init__(self, img_size: int = 64, channels: int = 3, width: int = 64, norm: str = "batch",
                 act: str = "leaky_relu", slope: float = 0.2, down: str = "strided", c_dim: int = 0,
                 cond: str = "none", c_embed_dim: int = 16, mbstd: bool = False, mbdisc: int = 0, pack: int = 1,
                 vbn_ref_size: int = 64):
        spec = dict(arch="dcgan", img_size=img_size, channels=channels, width=width, norm=norm, act=act, slope=slope,
                    down=down, c_dim=c_dim, cond=cond, c_embed_dim=c_embed_dim, mbstd=mbstd, mbdisc=mbdisc,
                    pack=pack, vbn_ref_size=vbn_ref_size)
        super().__init__(spec, (channels, img_size, img_size), torch.float32, vbn_ref_size, c_dim)
        self.pack = pack
        k = _octaves(img_size)
        ch = [width * 2**i for i in range(k)]  # 64 px: w, 2w, 4w, 8w at 32, 16, 8, 4 px
        bias = norm in ("none", "spectral")
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim and cond == "concat" else None
        in_ch = channels * pack + (c_embed_dim if self.embed is not None else 0)
        layers = [make_down(down, in_ch, ch[0], True), make_act(act, slope)]  # (in_ch, 64, 64) -> (w, 32, 32)
        for i in range(1, k):                                                 # -> (2w, 16) (4w, 8) (8w, 4)
            layers += [make_down(down, ch[i - 1], ch[i], bias), make_norm(norm, ch[i], True), make_act(act, slope)]
        self.body = nn.Sequential(*layers)
        self.head = DHead((ch[-1], 4, 4), mbstd, mbdisc, c_dim, projection=cond == "projection")
        init_dcgan_weights(self)
        if norm == "spectral":
            apply_spectral_norm(self)
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        if self.embed is not None:                        # the label as extra input channels, (B, c_embed_dim, H, W)
            x = torch.cat([x, self.embed(y)[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        h = self.body(pack(x, self.pack))                 # (B / pack, 8w, 4, 4)
        return self.head(h, y)
