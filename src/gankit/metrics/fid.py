"""FID (Heusel et al. 2017), KID (Binkowski et al. 2018) and the Inception score (Salimans et al. 2016), each with
its real-vs-real floor. Features come from metrics/features.py; the Inception score uses the data set's classifier.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg
import torch

from gankit.metrics import EvalContext, features, register

log = logging.getLogger("gankit")


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), as in Heusel et al.'s reference code
    (TTUR fid.py, kept by pytorch-fid): scipy's sqrtm of the product; if the product is singular or the root not
    finite, eps on the covariances' diagonals; a complex root is accepted only when its imaginary part is negligible."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID: mean/covariance shapes differ: {mu1.shape} {mu2.shape}, {sigma1.shape} {sigma2.shape}")
    diff = mu1 - mu2
    # scipy >= 1.16 no longer returns an error estimate but warns on a singular matrix: that warning is our test.
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
            singular = not np.isfinite(covmean).all()
        except scipy.linalg.LinAlgWarning:
            singular = True
    if singular:
        log.warning(f"FID: singular product of covariances; adding {eps:g} to their diagonals")
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: the matrix square root has an imaginary component of "
                             f"{np.max(np.abs(covmean.imag)):.3g}; use more samples (--n)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def gaussian_stats(f: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) of features f (N, D), with the N - 1 normalisation of np.cov."""
    a = f.double().cpu().numpy()
    return a.mean(0), np.cov(a, rowvar=False)


def fid_from_features(f1: torch.Tensor, f2: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def kid_from_features(f1: torch.Tensor, f2: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic kernel (x.y / D + 1)^3, mean and std over random subsets (torch-fidelity's)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(f1) // 2, len(f2) // 2)  # subsets that differ, so that the std means something
    out = kid_features_to_metric(f1.double(), f2.double(), kid_subsets=subsets, kid_subset_size=size,
                                 kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split of the (N, K) logits; (mean, std) over splits. Written here rather than
    taken from torchmetrics, whose InceptionScore runs its own Inception network on images, not on given logits.
    It lies in [1, K]: the KL averages to the mutual information of x and y, at most log K."""
    p = torch.softmax(logits.double(), dim=1)                          # (N, K)
    scores = []
    for part in p.chunk(splits):
        py = part.mean(0, keepdim=True)                                # (1, K) marginal of this split
        kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, py)).sum(1).mean()  # 0 log 0 = 0
        scores.append(kl.exp().item())
    s = torch.tensor(scores, dtype=torch.float64)
    return s.mean().item(), (s.std(unbiased=False).item() if len(s) > 1 else 0.0)


@register("fid", help="Frechet distance of features (Heusel et al. 2017), beside its real-vs-real floor")
def fid_metric(ctx: EvalContext) -> dict[str, float]:
    f = features.feature_sets(ctx)
    return {"fid": fid_from_features(f["fake"], f["real_a"]), "fid_floor": fid_from_features(f["real_b"], f["real_a"]),
            **features.info(ctx)}


@register("kid", help="kernel distance, unbiased MMD^2 with a cubic kernel (Binkowski et al. 2018), and its floor")
def kid_metric(ctx: EvalContext) -> dict[str, float]:
    f = features.feature_sets(ctx)
    kid, kid_std = kid_from_features(f["fake"], f["real_a"], seed=ctx.seed)
    floor, _ = kid_from_features(f["real_b"], f["real_a"], seed=ctx.seed)
    return {"kid": kid, "kid_std": kid_std, "kid_floor": floor, **features.info(ctx)}


@register("is", help="Inception score computed with the data set's classifier, in [1, classes], and its floor")
def is_metric(ctx: EvalContext) -> dict[str, float]:
    score, std = inception_score(features.logits(ctx, "fake"))
    floor, _ = inception_score(features.logits(ctx, "real_b"))
    return {"is": score, "is_std": std, "is_floor": floor, "n_samples": features.sample_count(ctx),
            "classifier_acc": features.real_classifier(ctx).accuracy}
