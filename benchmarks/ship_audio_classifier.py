"""Train the spoken-digit classifier that ships inside gankit (src/gankit/metrics/weights/fsdd-cnn-v1.*), once, with
gankit's own recipe (metrics/classifier.py's SmallCNN and fit, on metrics/audio.py's spectrograms).

    OMP_NUM_THREADS=1 python benchmarks/ship_audio_classifier.py ../shared/data/fsdd

FSDD's training split (recordings 5-49 of each digit and speaker, 2,700 clips) at 8 kHz, each cut to its loudest
8,192 samples or padded (data/audio.py), trains it on one CPU thread with a fixed seed and no label smoothing (so
real clips get confident predictions, which `audio_recognisable` counts); its accuracy on FSDD's test split
(recordings 0-4, 300 clips) is recorded beside the weights with their sha256. Existing files are never overwritten:
delete them (and raise the version in metrics/audio.py's STEM) to ship new weights.
"""

import json
import sys
import time

import torch
from safetensors.torch import save_file

from gankit import __version__, data
from gankit.checkpoint import sha256_file
from gankit.metrics import audio, classifier as clf

EPOCHS, LABEL_SMOOTHING, SEED, SIZE = 20.0, 0.0, 0, 32


def main(fsdd_dir: str) -> None:
    weights, meta_path = clf.SHIPPED_DIR / f"{audio.STEM}.safetensors", clf.SHIPPED_DIR / f"{audio.STEM}.json"
    if weights.exists() or meta_path.exists():
        print(f"{audio.STEM}: exists, left alone")
        return
    train = data.load("fsdd", fsdd_dir, sample_rate=audio.RATE, audio_length=audio.LENGTH)
    test = train.test
    x_train, x_test = audio.spectrograms(train.x, audio.RATE), audio.spectrograms(test.x, audio.RATE)
    t0 = time.perf_counter()
    model = clf.fit(x_train, train.y, 10, seed=SEED, epochs=EPOCHS, label_smoothing=LABEL_SMOOTHING)
    seconds = time.perf_counter() - t0
    model.input_size = SIZE
    acc = clf.accuracy(model, x_test, test.y)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    meta = {"name": audio.STEM, "data": "fsdd", "note": "FSDD's training split (recordings 5-49) at 8 kHz, 8,192 "
            "samples, as 64 x 64 log-magnitude spectrograms read at 32 x 32; accuracy on its test split (0-4)",
            "channels": 1, "num_classes": 10, "feat_dim": model.feat_dim, "width": model.width, "input_size": SIZE,
            "held_out_accuracy": acc, "n_train": len(train), "n_held_out": len(test), "epochs": EPOCHS,
            "label_smoothing": LABEL_SMOOTHING, "seed": SEED, "train_seconds": round(seconds, 1),
            "gankit_version": __version__, "torch_version": torch.__version__, "sha256": sha256_file(weights)}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{audio.STEM}: test-split accuracy {acc:.4f} ({len(test)} clips), trained in {seconds:.0f} s -> {weights}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fsdd")
