"""Next-frame prediction networks for task predict, small enough for 32 px frames on two CPU cores.

Frames are stacked as channels: a context of c frames of C channels is one (B, c*C, H, W) tensor (`stack`).

G(context, z) -> the next h frames (B, h*C, H, W): an encoder-decoder (U-Net: each decoder level also sees the
encoder's features of its size, which carry the digits' shapes), with z tiled over the bottleneck's positions and
concatenated there (pix2pix, Isola et al. 2017; SAVP, Lee et al. 2018, inject z likewise). G learns the change from
the last context frame, repeated: its output layer starts at zero, so an untrained G copies the last frame (as sr's G
starts at bicubic), the baseline any predictor must beat. Shapes for 32 px, width w, levels 3.
D(future, context) -> logits (B,): the whole sequence (context then future, stacked as channels) through strided
convolutions with LeakyReLU, down to 4 px, then a patch logit at each position, averaged (PatchGAN's judgement of
local motion and appearance).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gankit.models.blocks import apply_spectral_norm, make_norm

MAX_LEVELS = 3


def stack(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T*C, H, W)."""
    return frames.flatten(1, 2)


def unstack(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, T*C, H, W) -> (B, T, C, H, W)."""
    return x.unflatten(1, (x.shape[1] // channels, channels))


def levels_for(img_size: int) -> int:
    """Halvings of the frame down to the bottleneck: up to MAX_LEVELS, each leaving an even side of at least 2."""
    levels, side = 0, img_size
    while levels < MAX_LEVELS and side % 2 == 0 and side // 2 >= 2:
        levels, side = levels + 1, side // 2
    return levels


def _widths(width: int, levels: int) -> list[int]:
    """Channels at each level: w at full size and the first halving, 2w below (32 px: w, w, 2w, 2w)."""
    return [width if i < 2 else 2 * width for i in range(levels + 1)]


class Generator(nn.Module):
    def __init__(self, context: int = 5, horizon: int = 10, channels: int = 1, z_dim: int = 16, width: int = 32,
                 levels: int = 3, norm: str = "batch"):
        super().__init__()
        if not (1 <= context <= 1000 and 1 <= horizon <= 1000 and 0 <= levels <= MAX_LEVELS):
            raise ValueError(f"context {context}, horizon {horizon}, levels {levels} out of range")
        self.spec = dict(arch="unet", context=context, horizon=horizon, channels=channels, z_dim=z_dim, width=width,
                         levels=levels, norm=norm)
        self.context, self.horizon, self.channels, self.z_dim = context, horizon, channels, z_dim
        w = _widths(width, levels)
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.head = nn.Sequential(nn.Conv2d(context * channels, w[0], 3, 1, 1), act())            # (w, 32, 32)
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(w[i], w[i + 1], 4, 2, 1, bias=False),    # (w, 16, 16)
                                                make_norm(norm, w[i + 1], True), act())            # (2w, 8, 8)
                                  for i in range(levels))                                           # (2w, 4, 4)
        self.mid = nn.Sequential(nn.Conv2d(w[-1] + z_dim, w[-1], 3, 1, 1, bias=False),              # z joins here
                                 make_norm(norm, w[-1], True), nn.ReLU(inplace=True))
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),         # (2w, 8, 8)
                                              nn.Conv2d(w[i + 1] * (1 if i == levels - 1 else 2), w[i], 3, 1, 1,
                                                        bias=False),                                # (w, 16, 16)
                                              make_norm(norm, w[i], True), nn.ReLU(inplace=True))  # (w, 32, 32)
                                for i in reversed(range(levels)))
        self.tail = nn.Conv2d(w[0] * (2 if levels else 1), horizon * channels, 3, 1, 1)          # (h*C, 32, 32)
        nn.init.zeros_(self.tail.weight)   # G starts as a copy of the last context frame exactly
        nn.init.zeros_(self.tail.bias)

    def forward(self, context: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """context (B, c*C, H, W) in [-1, 1], z (B, z_dim) (drawn from N(0, I) when None) -> the future
        (B, h*C, H, W), unclamped (the L1 loss sees the raw values)."""
        if z is None:
            z = torch.randn(context.shape[0], self.z_dim, device=context.device)
        skips = [self.head(context)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        h = self.mid(torch.cat([h, z[:, :, None, None].expand(-1, -1, *h.shape[-2:])], 1))
        for up in self.up:
            h = torch.cat([up(h), skips.pop()], 1)
        last = context[:, -self.channels:]                                    # (B, C, H, W), the last frame
        return last.repeat(1, self.horizon, 1, 1) + self.tail(h)


class Discriminator(nn.Module):
    def __init__(self, context: int = 5, horizon: int = 10, channels: int = 1, width: int = 32, levels: int = 3,
                 norm: str = "spectral"):
        super().__init__()
        self.spec = dict(arch="unet", context=context, horizon=horizon, channels=channels, width=width,
                         levels=levels, norm=norm)
        layers, c_in = [], (context + horizon) * channels
        for i in range(max(levels, 1)):                                       # (w, 16, 16) (2w, 8, 8) (4w, 4, 4)
            c_out = width * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1) if levels else nn.Conv2d(c_in, c_out, 3, 1, 1),
                       make_norm(norm, c_out, True) if i else nn.Identity(), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, 1, 3, 1, 1)                                # (1, 4, 4): a logit per patch
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, future: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """future (B, h*C, H, W), context (B, c*C, H, W) -> logits (B,)."""
        return self.out(self.body(torch.cat([context, future], 1))).mean((1, 2, 3))
