"""Which classes does gankit's real-data classifier see in a sample file made with `gankit sample --class K`?

Usage: python benchmarks/class_check.py SAMPLES.npz [DATA] [IMG_SIZE]
e.g.   gankit train --config digits-cond && gankit sample runs/dcgan-cond-digits --class 3 --n 100 --out s.npz
       python benchmarks/class_check.py s.npz digits 32
"""
import sys

import numpy as np
import torch

from gankit import data
from gankit.metrics import classifier as clf


def main(path: str, name: str = "digits", img_size: int = 32) -> None:
    real = data.load(name, img_size=img_size)
    model = clf.real_classifier(real).model
    images = np.load(path)["images"]                        # uint8, N x H x W x C
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    _, logits = clf.predict(model, x)
    counts = np.bincount(logits.argmax(1).numpy(), minlength=real.num_classes)
    print(f"{len(images)} samples; classes the real-data classifier sees:")
    print(", ".join(f"{real.class_names[k]}: {n}" for k, n in enumerate(counts) if n))


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]), *(int(a) for a in sys.argv[3:4]))
