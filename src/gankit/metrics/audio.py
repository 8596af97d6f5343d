"""Metrics of generated recordings, judged by a spoken-digit classifier that ships with gankit, each beside the
same number measured on real held-out recordings (the floor): the Inception score as WaveGAN reports it, a Frechet
distance in the classifier's features, the share of samples recognised as one digit and the KL of their digit
histogram, and the class accuracy of a conditional G.

The classifier: a clip at 8 kHz, cut or padded to 8,192 samples (data/audio.py's fit_length), becomes a 64 x 64
log-magnitude spectrogram (models/specgan.py's Spectrogram), which metrics/classifier.py's SmallCNN reads at 32 x 32;
trained by that module's `fit` on FSDD's training split (benchmarks/ship_audio_classifier.py), its accuracy measured
on FSDD's test split.

The sets: m = min(n, held-out clips) generated clips against the data's held-out real clips (FSDD's test split,
300), so that each model number and its floor use the same count; the Frechet distance compares either set with the
training clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from gankit.outputs import sha256_file
from gankit.data.audio import fit_length, resample
from gankit.errors import UserError
from gankit.metrics import EvalContext, classifier as clf, register
from gankit.metrics.classes import class_accuracy, class_histogram_kl, recognisable_share
from gankit.metrics.fid import fid_from_features, inception_score
from gankit.models.specgan import Spectrogram

RATE, LENGTH, SPEC_SIZE = 8000, 8192, 64   # what the classifier hears: 1.02 s at 8 kHz, as a 64 x 64 spectrogram
STEM = "fsdd-cnn-v1"
SHIPPED_FOR = ("fsdd",)                    # the data sets whose digits it knows
_FRONT = Spectrogram(SPEC_SIZE, LENGTH)


def spectrograms(waves: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Waveforms (N, T) or (N, 1, T) at sample_rate -> the classifier's inputs (N, 1, 64, 64) in [-1, 1]."""
    w = waves.reshape(waves.shape[0], -1).detach().float().cpu().numpy()
    if sample_rate != RATE:
        w = np.stack([resample(row, sample_rate, RATE) for row in w])
    w = np.stack([fit_length(row, LENGTH) for row in w]).astype(np.float32)
    with torch.no_grad():
        return torch.cat([_FRONT(torch.from_numpy(chunk)) for chunk in np.array_split(w, max(1, len(w) // 256))])


def shipped(device="cpu") -> clf.Classifier:
    """The shipped spoken-digit classifier, checked against its recorded sha256."""
    weights, meta_path = clf.SHIPPED_DIR / f"{STEM}.safetensors", clf.SHIPPED_DIR / f"{STEM}.json"
    try:
        meta = json.loads(meta_path.read_text())
        digest = sha256_file(weights)
    except (OSError, ValueError) as e:
        raise UserError(f"metrics: the shipped spoken-digit classifier is missing or unreadable ({e}); reinstall "
                        "gankit") from None
    if digest != meta["sha256"]:
        raise UserError(f"metrics: {weights} does not match its checksum (sha256 {digest[:12]}..., expected "
                        f"{meta['sha256'][:12]}...); reinstall gankit")
    model = clf.SmallCNN(1, meta["num_classes"], meta["feat_dim"], meta["width"], meta["input_size"])
    model.load_state_dict(load_file(str(weights)))
    return clf.Classifier(model.to(device).eval().requires_grad_(False), meta["held_out_accuracy"], meta["n_train"],
                          meta["n_held_out"], meta["train_seconds"], Path(weights), shipped=True)


def classifier(ctx: EvalContext) -> clf.Classifier:
    if ctx.data.name not in SHIPPED_FOR:
        raise UserError(f"metrics: the audio metrics judge spoken digits with gankit's FSDD classifier; {ctx.data.name}"
                        f" is not FSDD (train on data fsdd, or score a folder of spoken digits with gankit's samples "
                        "by ear)")
    if "classifier" not in ctx.cache:   # the key under which evaluation.make_record finds it
        ctx.cache["classifier"] = shipped(ctx.device)
    return ctx.cache["classifier"]


def generated(ctx: EvalContext, m: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """m generated clips as waveforms (m, T) and their labels (the sampler's G may make spectrograms)."""
    x, y = ctx.fake()
    G = ctx.sampler.G
    waves = torch.cat([G.waveform(chunk.to(ctx.sampler.device)).cpu() for chunk in x[:m].split(256)])
    return waves, None if y is None else y[:m].cpu()


def sets(ctx: EvalContext) -> dict:
    """{'fake', 'real', 'train'}: (features, logits) of the m generated clips, the m held-out real clips and the
    training clips; 'fake_y' the generated clips' labels; 'm'."""
    if "audio_sets" not in ctx.cache:
        model, ref = classifier(ctx).model, ctx.data.reference()
        m = min(ctx.n, len(ref))
        if m < 20:
            raise UserError(f"metrics: need at least 20 held-out clips and samples, have {m}")
        waves, y = generated(ctx, m)
        pick = torch.randperm(len(ref), generator=torch.Generator().manual_seed(ctx.seed + 1))[:m]
        rate = ctx.data.sample_rate
        out = {k: clf.predict(model, spectrograms(w, rate)) for k, w in
               (("fake", waves), ("real", ref.x[pick]), ("train", ctx.data.x))}
        ctx.cache["audio_sets"] = {**out, "fake_y": y, "real_y": ref.y[pick], "m": m}
    return ctx.cache["audio_sets"]


def _info(ctx) -> dict:
    return {"n_samples": sets(ctx)["m"], "classifier_acc": classifier(ctx).accuracy}


@register("audio_is", data_kinds=("audio",),
          help="Inception score from the spoken-digit classifier, in [1, 10] (WaveGAN's); floor: held-out real clips")
def is_metric(ctx: EvalContext) -> dict[str, float]:
    s = sets(ctx)
    score, std = inception_score(s["fake"][1])
    floor, _ = inception_score(s["real"][1])
    return {"is": score, "is_std": std, "is_floor": floor, **_info(ctx)}


@register("audio_fd", data_kinds=("audio",),
          help="Frechet distance to the training clips in the classifier's features; floor: held-out real clips")
def fd_metric(ctx: EvalContext) -> dict[str, float]:
    s = sets(ctx)
    return {"fd": fid_from_features(s["fake"][0].double(), s["train"][0].double()),
            "fd_floor": fid_from_features(s["real"][0].double(), s["train"][0].double()), **_info(ctx)}


@register("audio_recognisable", data_kinds=("audio",),
          help="share of samples the classifier gives one digit with probability >= 0.9, and the KL of their digit "
               "histogram to the real one; floors: held-out real clips")
def recognisable_metric(ctx: EvalContext) -> dict[str, float]:
    s = sets(ctx)
    fake, real, train = s["fake"][1], s["real"][1], s["train"][1]
    return {"recognisable": recognisable_share(fake), "recognisable_floor": recognisable_share(real),
            "class_kl": class_histogram_kl(fake, train), "class_kl_floor": class_histogram_kl(real, train),
            **_info(ctx)}


@register("audio_class_acc", data_kinds=("audio",), conditional=True,
          help="share of generated clips the classifier hears as the digit asked for; floor: its accuracy on the "
               "held-out real clips")
def class_acc_metric(ctx: EvalContext) -> dict[str, float]:
    s = sets(ctx)
    return {"class_acc": class_accuracy(s["fake"][1], s["fake_y"]),
            "class_acc_floor": class_accuracy(s["real"][1], s["real_y"]), **_info(ctx)}
