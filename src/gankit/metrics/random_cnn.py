"""`--features random`: a fixed, randomly initialised CNN as the feature space of FID, KID, precision/recall and
density/coverage, for data that has neither Inception weights at hand nor a classifier of its own.

Random-network features (Naeini et al. 2019, "random network" FID) see the colours, edges and textures that the
first layers of any CNN respond to, and nothing learnt: they need no download and no labels, and they work for any
channel count and image size. What they do not see is what a trained network sees: Kynkaanniemi et al. 2023 show how
much an ImageNet-trained space's FID follows its classes; a random space follows low-level statistics instead, so
it ranks blur and noise well and may barely notice a missing class (docs/using.md has the measured limits).

The weights are drawn once from a fixed seed by make_weights() and shipped as weights/random-cnn-v1.safetensors with
a JSON card and its sha256 (benchmarks/random_features.py writes them): a change in torch's random number generator
cannot change the metric, and a figure measured here can be checked anywhere.

Architecture, with every input resized to SIZE x SIZE and turned into 3 channels (a grayscale image repeated; any
other count averaged first):
    (N, 3, 64, 64) -> conv 3x3 -> (N, 16, 64, 64) -> conv 3x3 /2 -> (N, 32, 32, 32) -> conv 3x3 /2 -> (N, 64, 16, 16)
    -> conv 3x3 /2 -> (N, 128, 8, 8), each conv followed by LeakyReLU(0.2);
each stage's activations give their spatial mean and standard deviation per channel: 2 x (16 + 32 + 64 + 128) = 480
features (first- and second-order statistics at four scales). Not the global maximum: on images with a flat
background some channels peak on the background itself, the same value for every image (5 of 480 features on digits,
8 on MNIST), which makes the covariances singular; the spread varies with every stroke. With the maximum in its
place the same measurements (benchmarks/random_features.py) saw a missing class less: FID 1.07x its floor for one
digit class removed, against 1.5x with the spread.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from gankit.outputs import sha256_file
from gankit.errors import UserError

NAME = "random-cnn-v1"        # the shipped file's stem: a new architecture or seed is a new version
WIDTHS = (16, 32, 64, 128)    # channels of each stage; every stage after the first halves the resolution
SIZE = 64                     # every input is resized to SIZE x SIZE, so runs at any img_size share one space
SLOPE = 0.2                   # LeakyReLU's negative slope
SEED = 20191211
FEAT_DIM = 2 * sum(WIDTHS)
WEIGHTS_DIR = Path(__file__).parent / "weights"
CAUTION = ("features of a fixed random CNN: they follow colours, edges and textures, not what the images show; a "
           "FID here ranks runs of the same data but is no Inception FID and may barely see a missing class")


class RandomCNN(nn.Module):
    """images (N, C, H, W) in [-1, 1], any C, H, W -> features (N, FEAT_DIM)."""

    def __init__(self):
        super().__init__()
        chans = (3,) + WIDTHS
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1)
                                   for i in range(len(WIDTHS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:                                    # (N, 1 or C, H, W) -> (N, 3, H, W)
            x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=x.shape[-1] > SIZE,
                              align_corners=False)
        pooled = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), SLOPE)                   # (N, width, S, S), S = 64, 32, 16, 8
            pooled += [x.mean((2, 3)), x.std((2, 3))]          # (N, width) each
        return torch.cat(pooled, 1)                            # (N, FEAT_DIM)


def make_weights(seed: int = SEED) -> dict[str, torch.Tensor]:
    """The state dict drawn from `seed`: He-normal weights for LeakyReLU (so activations keep their scale through
    the stages) and small normal biases (so a constant image does not give all-zero features). Drawn with an own
    generator, in a fixed order; only benchmarks/random_features.py calls this, the metric loads the shipped file."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, conv in enumerate(RandomCNN().convs):
        fan_in = conv.in_channels * 9
        std = (2.0 / ((1 + SLOPE**2) * fan_in)) ** 0.5
        state[f"convs.{i}.weight"] = torch.randn(conv.weight.shape, generator=gen) * std
        state[f"convs.{i}.bias"] = torch.randn(conv.bias.shape, generator=gen) * 0.1
    return state


def card_path() -> Path:
    return WEIGHTS_DIR / f"{NAME}.json"


def weights_path() -> Path:
    return WEIGHTS_DIR / f"{NAME}.safetensors"


def load(device="cpu") -> RandomCNN:
    """The shipped network, checked against its card's sha256."""
    try:
        card = json.loads(card_path().read_text())
        digest = sha256_file(weights_path())
    except (OSError, ValueError) as e:
        raise UserError(f"metrics: the shipped {NAME} weights are missing or unreadable ({e}); reinstall gankit")
    if digest != card["sha256"]:
        raise UserError(f"metrics: {weights_path()} does not match its checksum (sha256 {digest[:12]}..., expected "
                        f"{card['sha256'][:12]}...); reinstall gankit")
    model = RandomCNN()
    model.load_state_dict(load_file(str(weights_path())))
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def embed(model: RandomCNN, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """features (N, FEAT_DIM) float64 on the CPU, in batches on the model's device."""
    device = next(model.parameters()).device
    return torch.cat([model(chunk.to(device).float()).double().cpu() for chunk in x.split(batch_size)])
