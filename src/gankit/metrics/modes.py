"""Mode metrics, as PacGAN (Lin et al. 2018, sections 5.1 and 5.2) counts them.

2-D mixtures: each sample is assigned to its nearest true mode. A sample is high quality when it lies within 3
sigma of that mode; a mode is captured when at least one high-quality sample has it as nearest mode.
Stacked MNIST: the shipped MNIST classifier reads each channel's digit; the mode is the 3-digit number (1,000), and
a mode is captured when at least one sample falls in it.
Both: the reverse KL divergence compares the histogram q of modes over all samples with the uniform mixture
weights: sum_k q_k log(K q_k).
"""

from __future__ import annotations

import torch

from gankit.metrics import EvalContext, register
from gankit.metrics.classifier import predict, shipped_classifier


def reverse_kl(modes: torch.Tensor, k: int) -> float:
    q = torch.bincount(modes.cpu(), minlength=k).double() / modes.shape[0]
    nz = q > 0                                               # 0 log 0 = 0
    return (q[nz] * torch.log(k * q[nz])).sum().item()


def mode_stats(points: torch.Tensor, modes: torch.Tensor, sigma: float) -> dict[str, float]:
    points, modes = points.double(), modes.double().to(points.device)
    dist = torch.cdist(points, modes)                        # (N, K)
    nearest_dist, nearest = dist.min(1)
    good = nearest_dist <= 3 * sigma
    k = modes.shape[0]
    captured = torch.zeros(k, dtype=torch.bool)
    captured[nearest[good].cpu()] = True
    return {"modes": int(captured.sum()), "hq_pct": 100.0 * good.double().mean().item(),
            "reverse_kl": reverse_kl(nearest, k)}


def stacked_modes(x: torch.Tensor, classifier) -> torch.Tensor:
    """(N,) mode numbers 0..999 of Stacked MNIST images x (N, 3, H, W) in [-1, 1]: 100 d0 + 10 d1 + d2, each digit
    read by the MNIST classifier from its own channel."""
    digits = [predict(classifier.model, x[:, c: c + 1])[1].argmax(1) for c in range(3)]
    return digits[0] * 100 + digits[1] * 10 + digits[2]


def stacked_stats(x: torch.Tensor, classifier) -> dict[str, float]:
    modes = stacked_modes(x, classifier)
    return {"modes": int(torch.unique(modes).numel()), "reverse_kl": reverse_kl(modes, 1000)}


@register("modes", data_kinds=("points", "image"), only_data=("stacked-mnist",),
          help="2-D mixtures: modes captured, % high-quality samples, reverse KL; stacked-mnist: modes of 1,000 "
               "captured and reverse KL (PacGAN); floors: as many real examples")
def modes_metric(ctx: EvalContext) -> dict[str, float]:
    if ctx.kind == "image":
        return _stacked_metric(ctx)
    points, _ = ctx.fake()
    stats = mode_stats(points, ctx.data.modes, ctx.data.sigma)
    # The floor: the same numbers for as many real points (capped by the data set), what a perfect G would score.
    floor = mode_stats(ctx.data.x[: len(points)], ctx.data.modes, ctx.data.sigma)
    return {**stats, **{f"{k}_floor": v for k, v in floor.items()}, "n_samples": len(points)}


def _stacked_metric(ctx: EvalContext) -> dict[str, float]:
    clf = shipped_classifier("mnist")
    n = min(ctx.n, len(ctx.data))
    x_fake, _ = ctx.fake()
    perm = torch.randperm(len(ctx.data), generator=torch.Generator().manual_seed(ctx.seed + 1))[:n]
    stats = stacked_stats(x_fake[:n], clf)
    floor = stacked_stats(ctx.data.batch(perm.to(ctx.data.x.device)).cpu(), clf)
    return {**stats, **{f"{k}_floor": v for k, v in floor.items()}, "n_samples": n,
            "classifier_acc": clf.accuracy}
