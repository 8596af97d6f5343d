"""The random-CNN feature space (metrics/random_cnn.py): ship its weights, and measure what it sees.

    python benchmarks/random_features.py ship                 # writes weights/random-cnn-v1.{safetensors,json} once
    python benchmarks/random_features.py measure [MNIST_DIR]  # the table of docs/using.md, at one thread
    python benchmarks/random_features.py blobs [MNIST_DIR]    # what the shipped classifiers make of blobs

`measure` scores, for digits (and MNIST's 10k test split when MNIST_DIR holds its IDX files), real half B against
real half A (the floor) and against degraded versions of B: Gaussian blur, Gaussian noise, and B with one class
removed (its images replaced by other classes' images, so the count stays m). Each pair is scored by FID in the
random space and in the data set's shipped classifier's space, and by precision/recall in both; the rank of each
degradation in each space says whether the space orders them as their severity does. Every set is m real images
(m = N // 3 for digits, so that a third part fills in for removed classes; 2,500 for MNIST), split by a fixed seed.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from safetensors.torch import save_file

from gankit import __version__, data
from gankit.checkpoint import sha256_file
from gankit.metrics import classifier as clf, random_cnn
from gankit.metrics.classes import CONFIDENT, blobs, blur
from gankit.metrics.fid import fid_from_features
from gankit.metrics.prdc import prdc


def ship() -> None:
    weights, card = random_cnn.weights_path(), random_cnn.card_path()
    if weights.exists() or card.exists():
        print(f"{random_cnn.NAME}: exists, left alone")
        return
    state = random_cnn.make_weights(random_cnn.SEED)
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    meta = {"name": random_cnn.NAME, "note": "a fixed randomly initialised CNN: no training, no labels",
            "seed": random_cnn.SEED, "widths": list(random_cnn.WIDTHS), "input_size": random_cnn.SIZE,
            "leaky_relu_slope": random_cnn.SLOPE, "feat_dim": random_cnn.FEAT_DIM,
            "init": "He normal for LeakyReLU (std sqrt(2 / ((1 + slope^2) fan_in))), biases N(0, 0.1^2)",
            "pooling": "spatial mean and standard deviation of each stage's channels", "gankit_version": __version__,
            "torch_version": torch.__version__, "sha256": sha256_file(weights)}
    card.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{random_cnn.NAME}: {sum(v.numel() for v in state.values())} weights -> {weights}")


def degraded(b: torch.Tensor, yb: torch.Tensor, spare: torch.Tensor, yspare: torch.Tensor) -> dict:
    """The sets compared with real half A: B itself (the floor), then B degraded."""
    gen = torch.Generator().manual_seed(1)
    out = {"real B (floor)": b}
    for s in (0.5, 1.0, 2.0):
        out[f"blur sigma {s:g} px"] = blur(b, s)
    for s in (0.05, 0.1, 0.2, 0.4):
        out[f"noise std {s:g}"] = (b + s * torch.randn(b.shape, generator=gen)).clamp(-1, 1)
    keep = yb != 0                                    # class 0 removed, its places taken by spare non-0 images
    others = spare[yspare != 0]
    out["class 0 removed"] = torch.cat([b[keep], others[: int((~keep).sum())]])
    out["classes 0-4 removed"] = torch.cat([b[yb >= 5], spare[yspare >= 5]])[: len(b)]
    return out


def measure_one(name: str, ds, m: int) -> list[dict]:
    x, y = ds.floats(), ds.y
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    a, b, spare = perm[:m], perm[m: 2 * m], perm[2 * m: 3 * m]   # spare: the images that fill removed classes
    rnd, classifier = random_cnn.load(), clf.shipped_classifier(name)
    spaces = {"random": lambda t: random_cnn.embed(rnd, t),
              "classifier": lambda t: clf.predict(classifier.model, t)[0].double()}
    rows, fa = [], {}
    for space, emb in spaces.items():
        t0 = time.perf_counter()
        fa[space] = emb(x[a])
        print(f"{name}: {space} features of {m} images in {time.perf_counter() - t0:.1f} s", flush=True)
    for label, sx in degraded(x[b], y[b], x[spare], y[spare]).items():
        row = {"data": name, "m": m, "set": label}
        for space, emb in spaces.items():
            f = emb(sx)
            p = prdc(fa[space], f)
            row[space] = {"fid": fid_from_features(f, fa[space]), "precision": p["precision"], "recall": p["recall"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| data | compared with real half A | FID random | FID classifier | P / R random | P / R classifier |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['data']} (m {r['m']}) | {r['set']} | {r['random']['fid']:.4g} | "
                     f"{r['classifier']['fid']:.4g} | {r['random']['precision']:.2f} / {r['random']['recall']:.2f} | "
                     f"{r['classifier']['precision']:.2f} / {r['classifier']['recall']:.2f} |")
    return "\n".join(lines)


def measure(mnist_dir: str | None) -> None:
    rows = measure_one("digits", data.load("digits", img_size=32), 599)   # a third of 1,797 each
    if mnist_dir:
        try:
            mnist = data.load("mnist", mnist_dir, img_size=32)
        except Exception as e:  # noqa: BLE001  (no IDX files: the digits table alone)
            print(f"mnist: not measured ({e})")
        else:
            rows += measure_one("mnist", mnist, 2500)
    print(table(rows))


def blob_table(mnist_dir: str | None) -> None:
    """Each shipped classifier on 2,000 real images (or all 1,797 digits) and on their blobs (metrics/classes.py's
    blob_check, one line per kind of blob): recognisable share, accuracy, and the classes the blobs fall into."""
    sets = [("digits", data.load("digits", img_size=32))]
    if mnist_dir:
        sets.append(("mnist", data.load("mnist", mnist_dir, img_size=32)))
    print("| data | images | recognisable | accuracy | confident and right | argmax classes (0..9) |")
    print("|---|---|---:|---:|---:|---|")
    for name, ds in sets:
        x, y = ds.floats()[:2000], ds.y[:2000]
        model = clf.shipped_classifier(name).model
        for kind, images in {"real": x, **blobs(x)}.items():
            p = torch.softmax(clf.predict(model, images)[1].double(), 1)
            conf, arg = p.max(1)
            print(f"| {name} | {kind} | {(conf >= CONFIDENT).double().mean():.1%} | {(arg == y).double().mean():.1%} "
                  f"| {((conf >= CONFIDENT) & (arg == y)).double().mean():.1%} | "
                  f"{torch.bincount(arg, minlength=10).tolist()} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["ship"]:
        ship()
    elif sys.argv[1:2] == ["measure"]:
        measure(sys.argv[2] if len(sys.argv) > 2 else None)
    elif sys.argv[1:2] == ["blobs"]:
        blob_table(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        sys.exit(__doc__)
