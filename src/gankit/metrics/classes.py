"""Metrics that use the real data's classifier and labels: how recognisable samples are and how their classes are
spread, class accuracy of a conditional G, CAS (Ravuri & Vinyals 2019), and memorisation (which needs no labels,
only the same train / held-out split).

Each evaluation that uses the classifier also shows it blobs of real images (each image's mean colour, and a heavy
blur): a classifier that calls them recognisable is fooled by what carries no shape (the shipped digits and MNIST
classifiers call nearly every blob an 8, which class_kl sees); one that also puts them in their own classes tells
its classes apart by colour or coarse layout, and the evaluation says so in a caution (blob_check).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gankit.metrics import EvalContext, classifier as clf, features, register


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose arg-max class is the asked label; logits (N, K), labels (N,)."""
    return (logits.argmax(1).cpu() == labels.cpu()).double().mean().item()


def cas_score(x: torch.Tensor, y: torch.Tensor, data, device="cpu") -> float:
    """Train the data set classifier's recipe on (x, y) alone; its accuracy on the real held-out part."""
    _, held = clf.split_indices(len(data))
    model = clf.fit(x, y, data.num_classes, device)
    return clf.accuracy(model, data.floats()[held], data.y.detach().cpu()[held])


def nn_distances(query: torch.Tensor, ref: torch.Tensor, chunk: int = 512, device="cpu") -> torch.Tensor:
    """(Q,) distance from each row of query (Q, D) to its nearest row of ref (R, D), in chunks of query rows."""
    ref = ref.to(device, torch.float32)
    return torch.cat([torch.cdist(q.to(device, torch.float32), ref).min(1).values.cpu() for q in query.split(chunk)])


CONFIDENT = 0.9  # a sample is recognisable when the classifier gives one class at least this probability


def recognisable_share(logits: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """Share of rows of logits (N, K) whose largest softmax probability is >= threshold."""
    return (torch.softmax(logits.double(), 1).max(1).values >= threshold).double().mean().item()


def class_histogram_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> float:
    """KL(p || q) of the arg-max class histograms of two sets of logits (N, K), the generated set first, as
    PacGAN's reverse KL: a class G over-produces costs, a class it never makes costs nothing by itself but shows in
    the other classes' excess. q gets 0.5 in each empty class so that the divergence stays finite."""
    k = logits_p.shape[1]
    p = torch.bincount(logits_p.argmax(1).cpu(), minlength=k).double()
    q = torch.bincount(logits_q.argmax(1).cpu(), minlength=k).double().clamp_min(0.5)
    p, q = p / p.sum(), q / q.sum()
    nz = p > 0
    return (p[nz] * (p[nz] / q[nz]).log()).sum().item()


# ------------------------------------------------------------------------------------------------------------------
# the blob floor: what the classifier makes of images that keep nothing of a shape

BLOB_CAUTION = 0.5   # above this chance-corrected accuracy on blobs, classifier-space metrics are cautioned


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (N, C, H, W), reflect-padded, radius 3 sigma (at most the image's size - 1).
    A dozen lines rather than torchvision's gaussian_blur, whose kernel size must be odd and below the image's."""
    r = max(1, min(int(3 * sigma + 0.5), x.shape[-1] - 1, x.shape[-2] - 1))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blobs(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Two degenerate versions of real images (N, C, H, W): each image's mean colour everywhere, and the image
    blurred with sigma = H / 8 (at 32 px, 4 px: a blob where the strokes were)."""
    return {"mean colour": x.mean((2, 3), keepdim=True).expand_as(x).contiguous(), "blur": blur(x, x.shape[-1] / 8)}


def blob_check(ctx) -> dict:
    """What the data set's classifier makes of blobs of real half B: the share it calls recognisable (the blob floor
    of `recognisable`), and the share it confidently puts in the class of the image each came from, chance-corrected
    ((acc - 1/K) / (1 - 1/K): 0 when blobs fall into one class, 1 when they keep every class). At or above
    BLOB_CAUTION the classifier reads its classes from colour or coarse layout, and its metrics say little about
    shape (a folder of two classes of different colours: its classifier is 100 % accurate on blobs too)."""
    if "blob_check" not in ctx.cache:
        from_ = features.image_sets(ctx)
        model, y = features.real_classifier(ctx).model, from_["real_b_y"]
        rec, acc = 0.0, 0.0
        for x in blobs(from_["real_b"]).values():
            p = torch.softmax(clf.predict(model, x)[1].double(), 1)
            conf, arg = p.max(1)
            rec = max(rec, (conf >= CONFIDENT).double().mean().item())
            if y is not None:
                acc = max(acc, ((conf >= CONFIDENT) & (arg == y)).double().mean().item())
        k = p.shape[1]
        ctx.cache["blob_check"] = {"recognisable_blob": rec, "blob_class_acc": max(0.0, (acc - 1 / k) / (1 - 1 / k))}
    return ctx.cache["blob_check"]


def blob_caution(check: dict) -> str | None:
    """One line when blobs keep the classes, else None."""
    if check["blob_class_acc"] < BLOB_CAUTION:
        return None
    return (f"caution: the data set's classifier puts {check['blob_class_acc']:.0%} of blobs (single-colour or "
            "heavily blurred real images) in their own class, chance-corrected: it tells the classes apart by colour "
            "or coarse layout, so recognisable, class_kl, class_acc, is, cas and FID in its features say little "
            "about shape here; judge by the samples, or score with --features random")


@register("recognisable",
          help="share of samples the data set's classifier gives one class with probability >= 0.9, and the KL "
               "between the class histograms of samples and real images; floors: the same for a real half; "
               "recognisable_blob: the share for blobs of real images (single-colour, heavily blurred)")
def recognisable_metric(ctx: EvalContext) -> dict[str, float]:
    real = features.real_classifier(ctx)
    fake, real_a, real_b = (features.logits(ctx, k) for k in ("fake", "real_a", "real_b"))
    return {"recognisable": recognisable_share(fake), "recognisable_floor": recognisable_share(real_b),
            "recognisable_blob": blob_check(ctx)["recognisable_blob"],
            "class_kl": class_histogram_kl(fake, real_a), "class_kl_floor": class_histogram_kl(real_b, real_a),
            "n_samples": features.sample_count(ctx), "classifier_acc": real.accuracy}


@register("class_acc", conditional=True,
          help="share of generated samples the real-data classifier assigns to their asked class; floor: its "
               "held-out accuracy")
def class_acc_metric(ctx: EvalContext) -> dict[str, float]:
    real = features.real_classifier(ctx)
    acc = class_accuracy(features.logits(ctx, "fake"), features.image_sets(ctx)["fake_y"])
    return {"class_acc": acc, "class_acc_floor": real.accuracy, "n_samples": features.sample_count(ctx),
            "classifier_acc": real.accuracy}


@register("cas", conditional=True,
          help="classification accuracy score: the classifier trained on generated labelled samples only, tested "
               "on real held-out data; floor: the same trained on as many real samples")
def cas_metric(ctx: EvalContext) -> dict[str, float]:
    real = features.real_classifier(ctx)
    train_idx, _ = clf.split_indices(len(ctx.data))
    k = min(ctx.n, len(train_idx))
    x_fake, y_fake = ctx.fake()
    cas = cas_score(x_fake[:k], y_fake[:k], ctx.data, ctx.device)
    if k == len(train_idx) and not real.shipped:
        floor = real.accuracy       # the same recipe on the same real images: the cached classifier itself
    else:                           # (a shipped classifier had a longer recipe of its own)
        pick = train_idx if k == len(train_idx) else train_idx[torch.randperm(
            len(train_idx), generator=torch.Generator().manual_seed(ctx.seed))[:k]]
        floor = cas_score(ctx.data.floats()[pick], ctx.data.y.detach().cpu()[pick], ctx.data, ctx.device)
    return {"cas": cas, "cas_floor": floor, "cas_n": k, "classifier_acc": real.accuracy}


@register("memorization",
          help="mean and median pixel-space RMS distance from generated samples to their nearest training image; "
               "floor: the same for held-out real images")
def memorization_metric(ctx: EvalContext) -> dict[str, float]:
    # The reference set is the classifier's training part (80 %), so that held-out real images, which G may have
    # seen but the reference set does not hold, give the distance of a new real image: a G that copies its training
    # images comes out well below that floor. Distances are RMS over pixels in [-1, 1] (L2 / sqrt(C H W)).
    train_idx, held_idx = clf.split_indices(len(ctx.data))
    h = min(ctx.n, len(held_idx))
    x_real = ctx.data.floats()
    ref = x_real[train_idx].flatten(1)                                        # (R, C H W)
    scale = ref.shape[1] ** 0.5
    d_fake = nn_distances(ctx.fake()[0][:h].flatten(1), ref, device=ctx.device) / scale
    d_real = nn_distances(x_real[held_idx[:h]].flatten(1), ref, device=ctx.device) / scale
    return {"memorization_mean": d_fake.mean().item(), "memorization_median": d_fake.median().item(),
            "memorization_mean_floor": d_real.mean().item(), "memorization_median_floor": d_real.median().item(),
            "memorization_n": h}
