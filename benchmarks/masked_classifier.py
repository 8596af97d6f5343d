"""How much the known pixels tell: the data set classifier's recipe (metrics/classifier.py: a small CNN with random
shifts) trained on the masked training images themselves and scored on the masked held-out images. A reference for
the inpainting table: a classifier made for the masked images, against the completions judged by the classifier of
whole images. Same split as `gankit inpaint RUN --images heldout` (--holdout 1000 of the MNIST 10k file, 32 px).

Usage: python benchmarks/masked_classifier.py [MNIST_DIR] [MASK] [SEEDS]
"""
import statistics
import sys

import torch

from gankit import config
from gankit.tasks.gan import inpaint
from gankit.metrics import classifier as clf
from gankit.setup import load_parts

data_dir = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"
mask = sys.argv[2] if len(sys.argv) > 2 else "center"
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(1)
cfg = config.load(None, {"data": "mnist", "data_dir": data_dir, "img_size": 32, "holdout": 1000})
_, train, held = load_parts(cfg)
m_train = inpaint.make_mask(mask, len(train), (1, 32, 32), seed=1)     # random masks: other draws than the held-out's
m_held = inpaint.make_mask(mask, len(held), (1, 32, 32), seed=0)       # as `gankit inpaint --seed 0`
accs = []
for seed in range(seeds):
    model = clf.fit(train.floats() * m_train, train.y.cpu(), train.num_classes, seed=seed)
    accs.append(clf.accuracy(model, held.floats() * m_held, held.y.cpu()))
    print(f"seed {seed}: {accs[-1]:.2%}")
sd = statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else 0.0
print(f"mask {mask}: a CNN trained on the masked training images, on the masked held-out images: "
      f"{statistics.mean(accs):.2%} ± {sd:.2%} (mean ± s.e. over {len(accs)} seeds)")
