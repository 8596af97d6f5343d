"""The original fully connected GAN (Goodfellow et al. 2014), for 2-D points and small images."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gankit.models.base import DiscriminatorBase, GeneratorBase
from gankit.models.blocks import DHead, apply_spectral_norm, make_act, make_norm, pack


def he_init(module: nn.Module, act: str, slope: float) -> None:
    """He et al. 2015: each linear layer's weights ~ N(0, gain^2 / fan_in) for the activation that follows, biases 0.
    PyTorch's default (uniform, variance 1 / (3 fan_in)) shrinks the signal at every layer, so without norms a deep G
    starts by drawing nearly the same image for every z."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=slope if act == "leaky_relu" else 0.0, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Generator(GeneratorBase):
    def __init__(self, z_dim: int = 100, out_shape: tuple[int, ...] = (2,), width: int = 256, layers: int = 3,
                 norm: str = "batch", act: str = "relu", slope: float = 0.2, c_dim: int = 0, c_embed_dim: int = 16,
                 vbn_ref_size: int = 64, init: str = "default"):
        # `init` is not in the spec: it only matters before the first update, never to a model rebuilt from weights
        spec = dict(arch="mlp", z_dim=z_dim, out_shape=list(out_shape), width=width, layers=layers, norm=norm,
                    act=act, slope=slope, c_dim=c_dim, c_embed_dim=c_embed_dim, vbn_ref_size=vbn_ref_size)
        super().__init__(spec, z_dim, vbn_ref_size, c_dim)
        self.out_shape = tuple(out_shape)
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim else None
        dim = z_dim + (c_embed_dim if c_dim else 0)
        body = []
        for _ in range(layers):                                  # (B, dim) -> (B, width)
            body += [nn.Linear(dim, width, bias=norm == "none"), make_norm(norm, width, False), make_act(act, slope)]
            dim = width
        body.append(nn.Linear(dim, math.prod(out_shape)))        # (B, width) -> (B, prod(out_shape))
        if len(out_shape) == 3:                                  # images live in [-1, 1]; points are unbounded
            body.append(nn.Tanh())
        self.net = nn.Sequential(*body)
        if init == "he":
            he_init(self, act, slope)
        self._register_reference()

    def _forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        return self.net(z).view(-1, *self.out_shape)


class Discriminator(DiscriminatorBase):
    def __init__(self, in_shape: tuple[int, ...] = (2,), width: int = 256, layers: int = 3, norm: str = "none",
                 act: str = "leaky_relu", slope: float = 0.2, c_dim: int = 0, cond: str = "none",
                 c_embed_dim: int = 16, mbstd: bool = False, mbdisc: int = 0, pack: int = 1, vbn_ref_size: int = 64):
        spec = dict(arch="mlp", in_shape=list(in_shape), width=width, layers=layers, norm=norm, act=act, slope=slope,
                    c_dim=c_dim, cond=cond, c_embed_dim=c_embed_dim, mbstd=mbstd, mbdisc=mbdisc, pack=pack,
                    vbn_ref_size=vbn_ref_size)
        super().__init__(spec, tuple(in_shape), torch.float32, vbn_ref_size, c_dim)
        self.pack = pack
        self.embed = nn.Embedding(c_dim, c_embed_dim) if c_dim and cond == "concat" else None
        dim = math.prod(in_shape) * pack + (c_embed_dim if self.embed is not None else 0)
        body = [nn.Linear(dim, width), make_act(act, slope)]     # no norm on the input layer, as in DCGAN's D
        for _ in range(layers - 1):
            body += [nn.Linear(width, width, bias=norm in ("none", "spectral")), make_norm(norm, width, False),
                     make_act(act, slope)]
        self.body = nn.Sequential(*body)
        self.head = DHead((width,), mbstd, mbdisc, c_dim, projection=cond == "projection")
        if norm == "spectral":
            apply_spectral_norm(self)
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        x = pack(x.flatten(1), self.pack)                        # (B / pack, pack * prod(in_shape))
        if self.embed is not None:
            x = torch.cat([x, self.embed(y)], 1)
        return self.head(self.body(x), y)
