"""Improved precision and recall (Kynkaanniemi et al. 2019, k = 3) and density and coverage (Naeem et al. 2020,
k = 5) on features, each beside its real-vs-real floor.

Each sample's k-NN radius (distance to its k-th nearest neighbour in its own set) defines a ball; the manifold of
a set is the union of its balls. Precision: share of generated samples inside the real manifold. Recall: share of
real samples inside the generated manifold. Density: mean count of real balls holding a generated sample, over k.
Coverage: share of real samples whose ball holds at least one generated sample.

Written by hand rather than taken from torch-fidelity (precision/recall only) or the `prdc` package (numpy, full
N x M distance matrices, not installed): one chunked torch.cdist pass per pair of sets serves all four numbers,
so 10k x 10k runs in a few hundred MB, on the GPU when there is one.
"""

from __future__ import annotations

import torch

from gankit.metrics import EvalContext, features, register


def _chunks(a: torch.Tensor, b: torch.Tensor, chunk: int):
    """Yield (row offset, distances (chunk, len(b))) of a against b."""
    for i in range(0, len(a), chunk):
        yield i, torch.cdist(a[i: i + chunk], b)


def knn_radii(x: torch.Tensor, ks: tuple[int, ...], chunk: int = 1024) -> dict[int, torch.Tensor]:
    """{k: (N,) distance of each row of x (N, D) to its k-th nearest other row}."""
    kmax = max(ks)
    if len(x) <= kmax:
        raise ValueError(f"k-NN radii with k = {kmax} need more than {kmax} samples, got {len(x)}")
    out = {k: torch.empty(len(x), dtype=x.dtype, device=x.device) for k in ks}
    for i, d in _chunks(x, x, chunk):
        nearest = d.topk(kmax + 1, dim=1, largest=False).values  # (chunk, kmax + 1); column 0 is the row itself
        for k in ks:
            out[k][i: i + len(d)] = nearest[:, k]
    return out


def prdc(real: torch.Tensor, fake: torch.Tensor, k_pr: int = 3, k_dc: int = 5, chunk: int = 1024,
         device="cpu") -> dict[str, float]:
    """real (N, D), fake (M, D) -> precision, recall (k_pr) and density, coverage (k_dc). A point on a ball's
    boundary counts as inside (<=), as in both papers' code."""
    real, fake = real.to(device, torch.float32), fake.to(device, torch.float32)
    r_real = knn_radii(real, (k_pr, k_dc), chunk)
    r_fake = knn_radii(fake, (k_pr,), chunk)[k_pr]
    in_real = torch.zeros(len(fake), dtype=torch.bool, device=real.device)      # fake j inside some real k_pr-ball
    density = torch.zeros((), dtype=torch.float64, device=real.device)
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)     # real i's k_dc-ball holds a fake
    for i, d in _chunks(fake, real, chunk):                                    # d: (chunk of fake, N)
        in_real[i: i + len(d)] = (d <= r_real[k_pr]).any(1)
        inside_dc = d <= r_real[k_dc]
        density += inside_dc.sum(dtype=torch.float64)
        covered |= inside_dc.any(0)
    in_fake = torch.zeros(len(real), dtype=torch.bool, device=real.device)     # real i inside some fake ball
    for i, d in _chunks(real, fake, chunk):                                    # d: (chunk of real, M)
        in_fake[i: i + len(d)] = (d <= r_fake).any(1)
    return {"precision": in_real.double().mean().item(), "recall": in_fake.double().mean().item(),
            "density": (density / (k_dc * len(fake))).item(), "coverage": covered.double().mean().item()}


def _both(ctx: EvalContext) -> tuple[dict, dict]:
    """prdc of (generated vs real A) and of (real B vs real A), once per evaluation for `pr` and `dc` together."""
    if "prdc" not in ctx.cache:
        f = features.feature_sets(ctx)
        ctx.cache["prdc"] = (prdc(f["real_a"], f["fake"], device=ctx.device),
                             prdc(f["real_a"], f["real_b"], device=ctx.device))
    return ctx.cache["prdc"]


@register("pr", help="improved precision and recall, k = 3 (Kynkaanniemi et al. 2019), and their floors")
def pr_metric(ctx: EvalContext) -> dict[str, float]:
    model, floor = _both(ctx)
    return {"precision": model["precision"], "precision_floor": floor["precision"],
            "recall": model["recall"], "recall_floor": floor["recall"], **features.info(ctx)}


@register("dc", help="density and coverage, k = 5 (Naeem et al. 2020), and their floors")
def dc_metric(ctx: EvalContext) -> dict[str, float]:
    model, floor = _both(ctx)
    return {"density": model["density"], "density_floor": floor["density"],
            "coverage": model["coverage"], "coverage_floor": floor["coverage"], **features.info(ctx)}
