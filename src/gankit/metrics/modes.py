"""Mode metrics of the 2-D mixtures, as PacGAN (Lin et al. 2018, section 5.1) counts them.

Each sample is assigned to its nearest true mode. A sample is high quality when it lies within 3 sigma of that
mode; a mode is captured when at least one high-quality sample has it as nearest mode. The reverse KL divergence
compares the histogram q of nearest modes over all samples with the uniform mixture weights: sum_k q_k log(K q_k).
"""

from __future__ import annotations

import torch

from gankit.metrics import EvalContext, register


def mode_stats(points: torch.Tensor, modes: torch.Tensor, sigma: float) -> dict[str, float]:
    points, modes = points.double(), modes.double().to(points.device)
    dist = torch.cdist(points, modes)                        # (N, K)
    nearest_dist, nearest = dist.min(1)
    good = nearest_dist <= 3 * sigma
    k = modes.shape[0]
    captured = torch.zeros(k, dtype=torch.bool)
    captured[nearest[good].cpu()] = True
    q = torch.bincount(nearest.cpu(), minlength=k).double() / points.shape[0]
    nz = q > 0                                               # 0 log 0 = 0
    reverse_kl = (q[nz] * torch.log(k * q[nz])).sum().item()
    return {"modes": int(captured.sum()), "hq_pct": 100.0 * good.double().mean().item(), "reverse_kl": reverse_kl}


@register("modes", data_kinds=("points",), help="modes captured, % high-quality samples, reverse KL (PacGAN)")
def modes_metric(ctx: EvalContext) -> dict[str, float]:
    points, _ = ctx.fake()
    stats = mode_stats(points, ctx.data.modes, ctx.data.sigma)
    # The floor: the same numbers for as many real points (capped by the data set), what a perfect G would score.
    floor = mode_stats(ctx.data.x[: len(points)], ctx.data.modes, ctx.data.sigma)
    return {**stats, **{f"{k}_floor": v for k, v in floor.items()}, "n_samples": len(points)}
