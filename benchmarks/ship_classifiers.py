"""Train the classifiers that ship inside gankit (src/gankit/metrics/weights/), once, with gankit's own recipe.

    python benchmarks/ship_classifiers.py ../shared/data/mnist

Each is a SmallCNN trained by metrics.classifier.fit on the training part (80 %) of the data set at 32 x 32 px, with
a fixed seed on one CPU thread, 10 epochs and no label smoothing (so that real images get confident predictions,
which the `recognisable` metric counts); its accuracy on the held-out part (20 %, the same fixed split that every
metric uses) is recorded beside the weights with their sha256. MNIST here is the 10k test split (the only one at
hand): 8,000 images train the classifier, 2,000 are held out. Existing files are never overwritten: delete them
(and raise the version in classifier.SHIPPED) to ship new weights.
"""

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from gankit import __version__, data
from gankit.checkpoint import sha256_file
from gankit.metrics import classifier as clf

EPOCHS, LABEL_SMOOTHING, SEED, SIZE = 10.0, 0.0, 0, 32


def ship(name: str, ds, note: str) -> None:
    stem = clf.SHIPPED[name]
    weights, meta_path = clf.SHIPPED_DIR / f"{stem}.safetensors", clf.SHIPPED_DIR / f"{stem}.json"
    if weights.exists() or meta_path.exists():
        print(f"{stem}: exists, left alone")
        return
    train, held = clf.split_indices(len(ds))
    x, y = ds.floats(), ds.y
    t0 = time.perf_counter()
    model = clf.fit(x[train], y[train], ds.num_classes, seed=SEED, epochs=EPOCHS, label_smoothing=LABEL_SMOOTHING)
    seconds = time.perf_counter() - t0
    model.input_size = SIZE
    acc = clf.accuracy(model, x[held], y[held])
    clf.SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    meta = {"name": stem, "data": name, "note": note, "channels": model.channels, "num_classes": model.num_classes,
            "feat_dim": model.feat_dim, "width": model.width, "input_size": SIZE, "held_out_accuracy": acc,
            "n_train": len(train), "n_held_out": len(held), "split_seed": clf.SPLIT_SEED, "epochs": EPOCHS,
            "label_smoothing": LABEL_SMOOTHING, "seed": SEED, "train_seconds": round(seconds, 1),
            "gankit_version": __version__, "torch_version": torch.__version__, "sha256": sha256_file(weights)}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{stem}: held-out accuracy {acc:.4f} ({len(held)} images), trained in {seconds:.0f} s -> {weights}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    mnist_dir = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"
    ship("digits", data.load("digits", img_size=SIZE), "scikit-learn's 1,797 8x8 digits, upsampled to 32 px")
    ship("mnist", data.load("mnist", mnist_dir, img_size=SIZE), "MNIST's 10k test split at 32 px (the only split "
         "at hand); 8,000 train the classifier, 2,000 are held out")
