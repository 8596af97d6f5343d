"""For a conditional digits run: per class K, the share of `sampler(200, cls=K)` samples that gankit's shipped digits
classifier reads as K (fixed seeds, the averaged G).

Usage: python benchmarks/per_class.py RUN [DATA]    e.g. python benchmarks/per_class.py runs/mlp-cond-digits
"""
import sys

import torch

import gankit
from gankit import data
from gankit.metrics import classifier as clf


def main(run: str, name: str = "digits", n: int = 200) -> None:
    sampler = gankit.load(run)
    size = sampler(1, generator=torch.Generator().manual_seed(0), cls=0)[0].shape[-1]  # the run's image size
    real = data.load(name, img_size=size)
    model = clf.real_classifier(real).model
    shares = []
    for k in range(real.num_classes):
        x, _ = sampler(n, generator=torch.Generator().manual_seed(100 + k), cls=k)
        _, logits = clf.predict(model, x)
        shares.append((logits.argmax(1) == k).float().mean().item())
    print(f"{run}: per class", " ".join(f"{s:.3f}" for s in shares),
          f"| worst {min(shares):.3f}, mean {sum(shares) / len(shares):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
