"""Building blocks shared by the DCGAN and MLP models: norms (virtual batch norm included), activations,
up- and downsampling, the minibatch features of D, label embeddings and D's output head."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation (Salimans et al. 2016, section 3.4).

    A reference batch R, fixed at the start of training, is passed through the network first; each layer keeps the
    statistics of R. Every other example x is then normalised with the statistics of R together with x itself,
    weighted n/(n+1) and 1/(n+1), so its output does not depend on the other examples of its batch.
    torch has no such layer, hence this one. Statistics are per channel, over the spatial positions.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.eps = eps
        self.collecting = False
        self.ref: tuple[torch.Tensor, torch.Tensor, int] | None = None  # mean, mean of squares, |R|

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        shape = (1, -1) + (1,) * len(spatial)
        if self.collecting:  # the reference pass: R normalised with its own statistics
            mean = x.mean((0,) + spatial, keepdim=True)
            meansq = (x * x).mean((0,) + spatial, keepdim=True)
            self.ref = (mean, meansq, x.shape[0])
        else:
            if self.ref is None:
                raise RuntimeError("VirtualBatchNorm: run the reference batch first (see with_reference)")
            ref_mean, ref_meansq, n = self.ref
            own_mean = x.mean(spatial, keepdim=True) if spatial else x   # (B, C, 1, 1) or (B, C)
            own_meansq = (x * x).mean(spatial, keepdim=True) if spatial else x * x
            mean = (n * ref_mean + own_mean) / (n + 1)
            meansq = (n * ref_meansq + own_meansq) / (n + 1)
        var = (meansq - mean * mean).clamp_min(0)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


def run_with_reference(module: nn.Module, forward, ref_args: tuple, args: tuple):
    """Call forward(*ref_args) to collect each VirtualBatchNorm's reference statistics, then forward(*args).

    Without VirtualBatchNorm layers this is just forward(*args). The reference pass keeps its graph, so the
    gradient flows through R's statistics as well, as in the original implementation.
    """
    layers = [m for m in module.modules() if isinstance(m, VirtualBatchNorm)]
    if not layers:
        return forward(*args)
    with _collecting(layers):
        forward(*ref_args)
    try:
        return forward(*args)
    finally:
        for layer in layers:
            layer.ref = None  # do not keep the reference graph alive between calls


@contextlib.contextmanager
def _collecting(layers):
    for layer in layers:
        layer.collecting = True
    try:
        yield
    finally:
        for layer in layers:
            layer.collecting = False


def make_norm(kind: str, channels: int, images: bool) -> nn.Module:
    """A normalisation layer over `channels` features of feature maps (images=True) or vectors."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if images else nn.BatchNorm1d(channels)
    if kind == "virtual_batch":
        return VirtualBatchNorm(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":  # over all of C x H x W for maps, as LayerNorm does for vectors
        return nn.GroupNorm(1, channels) if images else nn.LayerNorm(channels)
    if kind in ("none", "spectral"):  # spectral normalisation acts on weights, see apply_spectral_norm
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight under `module`."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear, nn.Embedding)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)


def make_act(kind: str, slope: float) -> nn.Module:
    """In place: every activation here follows a layer whose backward needs its input, not its output, so
    overwriting the output is safe and saves a pass over memory (5-8 % of a 64 px DCGAN step on the CPU)."""
    return nn.LeakyReLU(slope, inplace=True) if kind == "leaky_relu" else nn.ReLU(inplace=True)


class ZeroInsertUnpool(nn.Module):
    """2x unpooling by zero insertion (Dosovitskiy et al. 2015): each value goes to the top-left of a 2x2 cell.

    The "unpooling" that the survey advises replacing with deconvolution: it spreads gradients sparsely.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = x.new_zeros(b, c, 2 * h, 2 * w)
        out[:, :, ::2, ::2] = x
        return out


def make_up(kind: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    """Double the spatial size: (c_in, H, W) -> (c_out, 2H, 2W)."""
    if kind == "deconv":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)
    if kind == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    if kind == "unpool":
        return nn.Sequential(ZeroInsertUnpool(), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    raise ValueError(f"unknown upsampling {kind!r}")


def make_down(kind: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    """Halve the spatial size: (c_in, H, W) -> (c_out, H/2, W/2)."""
    if kind == "strided":
        return nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias)
    if kind == "avgpool":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias), nn.AvgPool2d(2))
    if kind == "maxpool":
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias), nn.MaxPool2d(2))
    raise ValueError(f"unknown downsampling {kind!r}")


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018): the std of each feature over the batch, averaged to one
    number and appended to every example as one more channel (maps) or feature (vectors)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(h.var(0, unbiased=False) + 1e-8).mean()
        extra = std.expand(h.shape[0], 1, *h.shape[2:])
        return torch.cat([h, extra], 1)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, section 3.2).

    f (B, A) -> M = f T reshaped (B, K, dim); for each kernel k, o_k(x_i) = sum_{j != i} exp(-||M_ik - M_jk||_1).
    The K closeness features are appended to f, so D can see when a batch lacks variety.
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int = 5):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim)               # (B, K, dim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)                    # (B, B, K)
        o = torch.exp(-l1).sum(1) - 1.0                                         # drop j = i, where exp(0) = 1
        return torch.cat([f, o], 1)


class DHead(nn.Module):
    """D's output: minibatch features, then one logit, plus the projection term <embed(y), phi> when asked.

    h: D's last hidden activations, (B, C, 4, 4) or (B, F). Returns (logit (B,), phi (B, F)), where phi is the
    flattened h that feature matching compares.
    """

    def __init__(self, h_shape: tuple[int, ...], mbstd: bool, mbdisc: int, c_dim: int, projection: bool):
        super().__init__()
        self.mbstd = MinibatchStd() if mbstd else None
        flat = (h_shape[0] + int(mbstd)) * math.prod(h_shape[1:])
        self.mbdisc = MinibatchDiscrimination(flat, mbdisc) if mbdisc else None
        self.out = nn.Linear(flat + mbdisc, 1)
        self.project = nn.Embedding(c_dim, flat + mbdisc) if projection else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        phi = h.flatten(1)
        if self.mbstd is not None:
            h = self.mbstd(h)
        f = h.flatten(1)
        if self.mbdisc is not None:
            f = self.mbdisc(f)
        logit = self.out(f).squeeze(1)
        if self.project is not None:  # Miyato & Koyama 2018: logit = psi(f) + <embed(y), f>
            logit = logit + (self.project(y) * f).sum(1)
        return logit, phi


def pack(x: torch.Tensor, n: int) -> torch.Tensor:
    """PacGAN: (B, C, ...) -> (B/n, n*C, ...), so D judges n samples jointly. Consecutive samples share a pack."""
    if n == 1:
        return x
    b = x.shape[0]
    return x.reshape(b // n, n * x.shape[1], *x.shape[2:])


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.: all weights from N(0, 0.02); norm scales from N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d,
                            VirtualBatchNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

