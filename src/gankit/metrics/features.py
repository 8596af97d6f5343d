"""Feature spaces for the image metrics, and the sets every metric of one evaluation shares.

`--features classifier`: the data set's own small CNN (metrics/classifier.py), the default for 1-channel data.
`--features inception`: Inception-v3 pool features (2048-d) through torch-fidelity, with the weights file that FID's
reference implementation uses; gankit never downloads it when offline.
`--features random`: a fixed random CNN (metrics/random_cnn.py, shipped weights): no download, no labels, any image.
`--features auto` (the default): the classifier when one ships for the data set or the data is 1-channel with
classes to train one on; else Inception when its weights file is already on disk; else random, with one line that
says so (auto never downloads).

The floor: the real data is shuffled (by the evaluation's seed) and cut into two disjoint halves A and B of
m = min(n, N // 2) images each. A model metric compares m generated images with A; its floor compares B with A, so
both use the same reference set and the same sample counts.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from gankit.errors import UserError
from gankit.metrics import classifier as clf, random_cnn

log = logging.getLogger("gankit")

FEATURES = ("auto", "classifier", "inception", "random")
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def inception_dir() -> Path:
    """Where torch.hub, and so torch-fidelity and torchmetrics, keeps weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline() -> bool:
    return os.environ.get("GANKIT_OFFLINE", "") not in ("", "0")


def load_inception(device="cpu"):
    """torch-fidelity's FID Inception-v3, returning 2048-d pool features for uint8 (N, 3, H, W) images."""
    path = inception_dir() / INCEPTION_FILE
    message = (f"metrics: Inception-v3 weights not found; put {INCEPTION_FILE} (from {INCEPTION_URL}) in "
               f"{inception_dir()}, or use --features random (no download)")
    if not path.is_file():
        if _offline():
            raise UserError(message)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except Exception:  # URLError, HTTPError, OSError, timeouts: all mean "not available here"
            raise UserError(message) from None
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"metrics: cannot load {path} ({type(e).__name__}); delete it and put a fresh copy there "
                        "or use --features random (no download)") from None
    return model.to(device).eval()


def resolve(choice: str, data) -> str:
    if choice not in FEATURES:
        raise UserError(f"--features: unknown {choice!r}; choose from {', '.join(FEATURES)}")
    if choice != "auto":
        return choice
    if data.name in clf.SHIPPED or (data.x.shape[1] == 1 and data.y is not None and data.num_classes >= 2):
        return "classifier"
    return "inception" if (inception_dir() / INCEPTION_FILE).is_file() else "random"


def auto_line(data) -> str:
    """What auto says when it scores in the random space: which space, why, and its caution."""
    return (f"metrics: features: random ({random_cnn.NAME}), as {data.name} has no shipped classifier and no "
            f"Inception weights are in {inception_dir()}: "
            f"{random_cnn.CAUTION}; put {INCEPTION_FILE} there (or pass --features inception to download it) for "
            "FIDs comparable with published ones")


class Embedder:
    """images (N, C, H, W) in [-1, 1] -> features (N, D) on CPU, float64. `info` goes beside every result."""

    def __init__(self, kind: str, data, device="cpu"):
        self.kind, self.device, self.classifier, self.inception, self.random = kind, device, None, None, None
        self.info = {}
        if kind == "classifier":
            self.classifier = clf.real_classifier(data, device)
            self.info = {"classifier_acc": self.classifier.accuracy}
        elif kind == "random":
            self.random = random_cnn.load(device)
        else:
            self.inception = load_inception(device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is not None:
            return clf.predict(self.classifier.model, x)[0].double()
        if self.random is not None:
            return random_cnn.embed(self.random, x)
        out = []
        for chunk in x.split(64):
            u8 = ((chunk.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (B, C, H, W) as files hold it
            if u8.shape[1] == 1:
                u8 = u8.expand(-1, 3, -1, -1)
            out.append(self.inception(u8.to(self.device))[0].double().cpu())            # (B, 2048)
        return torch.cat(out)


@functools.lru_cache(maxsize=None)
def _say_once(line: str) -> None:
    """A warning once per process: a run that evaluates every 1,000 steps says which space it scores in once."""
    log.warning(line)


def embedder(ctx) -> Embedder:
    if "embedder" not in ctx.cache:
        kind = resolve(ctx.features, ctx.data)
        if kind == "random" and ctx.features == "auto":
            _say_once(auto_line(ctx.data))
        ctx.cache["embedder"] = Embedder(kind, ctx.data, ctx.device)
    return ctx.cache["embedder"]


def real_classifier(ctx) -> clf.Classifier:
    """The data set's classifier, whatever the feature space (IS, class accuracy and CAS always use it)."""
    if resolve(ctx.features, ctx.data) == "classifier":
        return embedder(ctx).classifier
    if "classifier" not in ctx.cache:
        ctx.cache["classifier"] = clf.real_classifier(ctx.data, ctx.device)
    return ctx.cache["classifier"]


def sample_count(ctx) -> int:
    """m: generated images per metric, and the size of each real half."""
    m = min(ctx.n, len(ctx.data) // 2)
    if m < 6:
        raise UserError(f"metrics: need at least 6 samples per set, have {m} (n {ctx.n}, data set {len(ctx.data)})")
    return m


def image_sets(ctx) -> dict[str, torch.Tensor]:
    """{'fake': (m, C, H, W), 'real_a': ..., 'real_b': ...} on CPU; labels 'fake_y' and 'real_b_y' (or None)."""
    if "sets" not in ctx.cache:
        m = sample_count(ctx)
        x_fake, y_fake = ctx.fake()
        perm = torch.randperm(len(ctx.data), generator=torch.Generator().manual_seed(ctx.seed + 1))
        x_real = ctx.data.floats()
        y_real = None if ctx.data.y is None else ctx.data.y.detach().cpu()
        ctx.cache["sets"] = {"fake": x_fake[:m].cpu(), "fake_y": None if y_fake is None else y_fake[:m].cpu(),
                             "real_a": x_real[perm[:m]], "real_b": x_real[perm[m: 2 * m]],
                             "real_b_y": None if y_real is None else y_real[perm[m: 2 * m]]}
    return ctx.cache["sets"]


def feature_sets(ctx) -> dict[str, torch.Tensor]:
    """The same sets as image_sets, embedded once per evaluation: each (m, D) float64."""
    if "feature_sets" not in ctx.cache:
        emb, sets = embedder(ctx), image_sets(ctx)
        ctx.cache["feature_sets"] = {k: emb(sets[k]) for k in ("fake", "real_a", "real_b")}
    return ctx.cache["feature_sets"]


def info(ctx) -> dict[str, float]:
    """What goes beside every feature-based result: the sample count, and the classifier's held-out accuracy."""
    return {"n_samples": sample_count(ctx), **embedder(ctx).info}


def logits(ctx, key: str) -> torch.Tensor:
    """The data set classifier's logits (m, K) for one of the image sets ('fake', 'real_a', 'real_b')."""
    cache = ctx.cache.setdefault("logits", {})
    if key not in cache:
        cache[key] = clf.predict(real_classifier(ctx).model, image_sets(ctx)[key])[1]
    return cache[key]

