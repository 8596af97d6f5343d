"""The semi-supervised GAN's networks (Salimans et al. 2016, section 5), after openai/improved-gan's MNIST model.

D is a K-way classifier whose logits l (B, K) also say real or generated: the (K+1)-th, "generated", logit is fixed
at 0, so p(real | x) = Z / (Z + 1) with Z = sum_k exp(l_k) (gankit.losses.ssl_d_loss). Its hidden layers are
weight-normalised (Salimans & Kingma 2016) with a data-dependent initialisation and fixed per-unit scales, and
Gaussian noise is added to its input and to every hidden layer while training: together the regularisers that let
it learn from 10 labels per class. G is a small MLP with batch norm and softplus; it is trained by feature matching
on D's last hidden layer (gankit.losses.feature_matching).

Shapes below are for MNIST (1 x 28 x 28 images, flattened to 784) and the preset's widths.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from gankit.models.base import DiscriminatorBase, GeneratorBase

# improved-gan's noise: 0.3 on the input (pixels in [0, 1]), 0.5 after each hidden layer.
INPUT_NOISE = 0.3
HIDDEN_NOISE = 0.5


def d_widths(width: int, layers: int) -> list[int]:
    """Hidden widths that halve twice and then stay: width 1000, 5 layers -> 1000, 500, 250, 250, 250."""
    return [max(width >> i, width // 4, 1) for i in range(layers)]


class Generator(GeneratorBase):
    def __init__(self, z_dim: int = 100, out_shape: tuple[int, ...] = (1, 28, 28), width: int = 500, layers: int = 2,
                 c_dim: int = 0, vbn_ref_size: int = 64):
        spec = dict(arch="ssl-mlp", z_dim=z_dim, out_shape=list(out_shape), width=width, layers=layers)
        super().__init__(spec, z_dim, vbn_ref_size, 0)
        self.out_shape = tuple(out_shape)
        body, dim = [], z_dim
        for _ in range(layers):                                   # (B, dim) -> (B, width)
            body += [nn.Linear(dim, width, bias=False), nn.BatchNorm1d(width), nn.Softplus()]
            dim = width
        body += [weight_norm(nn.Linear(dim, math.prod(out_shape))), nn.Tanh()]   # (B, C*H*W) in [-1, 1]
        self.net = nn.Sequential(*body)
        self._register_reference()

    def _forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class Discriminator(DiscriminatorBase):
    """D(x) -> logits (B, K); D(x, with_features=True) -> (logits, features (B, width // 4)) for feature matching."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10, width: int = 1000,
                 layers: int = 5, vbn_ref_size: int = 64):
        spec = dict(arch="ssl-mlp", in_shape=list(in_shape), num_classes=num_classes, width=width, layers=layers)
        super().__init__(spec, tuple(in_shape), torch.float32, vbn_ref_size, 0)
        self.num_classes = num_classes
        dims = [math.prod(in_shape)] + d_widths(width, layers)   # 784, 1000, 500, 250, 250, 250
        self.hidden = nn.ModuleList(weight_norm(nn.Linear(a, b)) for a, b in zip(dims[:-1], dims[1:]))
        self.out = weight_norm(nn.Linear(dims[-1], num_classes))  # (B, 250) -> (B, K)
        self._register_reference()

    def _forward(self, x: torch.Tensor, y: torch.Tensor | None):
        # D reads pixels in [0, 1], as improved-gan's, where the background is 0. With gankit's [-1, 1] the background
        # is a large constant input that moves every unit whenever a weight's direction turns: on MNIST with 100
        # labels the supervised loss then fell several times more slowly (measured over the first 400 steps).
        h = (x.flatten(1) + 1) / 2                                # (B, 784)
        if self.training:
            h = h + INPUT_NOISE * torch.randn_like(h)
        for layer in self.hidden:
            phi = F.relu(layer(h))                                # feature matching compares the last phi, noise-free
            h = phi + HIDDEN_NOISE * torch.randn_like(phi) if self.training else phi
        return self.out(h), phi

    @torch.no_grad()
    def init_from_batch(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation (Salimans & Kingma 2016, 3.1): scale and shift every layer so that its
        pre-activations on the batch x (B, C, H, W) have zero mean and unit variance per unit. The hidden layers'
        scales then stay fixed, as in improved-gan: only the directions of their weights and their biases learn."""
        h = (x.flatten(1) + 1) / 2
        for layer in [*self.hidden, self.out]:
            a = layer(h)                                          # (B, units)
            mean, std = a.mean(0), a.std(0) + 1e-6
            scale = layer.parametrizations.weight.original0      # g, (units, 1)
            scale.div_(std[:, None])
            layer.bias.sub_(mean).div_(std)
            h = F.relu(layer(h))
        for layer in self.hidden:
            layer.parametrizations.weight.original0.requires_grad_(False)
