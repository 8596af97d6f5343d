"""D-guided sampling: the trained D picks G's samples (drs, mh) or moves their latents (ddls) towards the data.

At its optimum D*(x) = p_data(x) / (p_data(x) + p_G(x)), so D's logit estimates log p_data(x) / p_G(x). Each option
uses that estimate with G unchanged:
- drs, discriminator rejection sampling (Azadi et al. 2019): keep a G sample with probability sigmoid(F(x)),
  F = s - s_max - log(1 - exp(s - s_max - eps)) - gamma, where s_max is the largest score seen (burn-in first) and
  gamma shifts F to its `drs_percentile`-th percentile on the burn-in samples, which sets how many are kept;
- mh, Metropolis-Hastings (Turner et al. 2019): an independence chain of `mh_steps` G proposals, each taken with
  probability min(1, exp(s(x') - s(x))); the chain starts at a real image, so it needs no burn-in, and a chain that
  takes no proposal starts again from a G sample;
- ddls, Langevin dynamics in latent space (Che et al. 2020): `ddls_steps` steps of z <- z - eps/2 grad E(z) +
  sqrt(eps) noise on the energy E(z) = -log p0(z) - s(G(z)), from the prior's draw.

s(x) is D's logit calibrated on real images by Platt scaling (a logistic regression of real against generated,
scikit-learn's), as both rejection papers do: a D trained in the game is not the optimal one, and the scale of its
logit is arbitrary (a critic's or a hinge D's most of all). The real images are the run's held-out examples when it
kept some, else its training data (`Calibration.source` says which).

A D that judges a batch (PacGAN packing, minibatch stddev) scores one sample inside a context: with packing, each
sample is packed beside pack - 1 fresh G samples, as D saw generated packs in training (a fixed context would favour
the samples unlike it, since PacGAN's D rewards a varied pack).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from gankit import config as config_mod, data as datasets, registry
from gankit.config import GuideOptions as Options
from gankit.errors import ConfigError, UserError

GUIDES = tuple(registry.GUIDES)
EPS = 1e-6            # DRS's epsilon inside log(1 - exp(.)), as the paper's
CHUNK = 500           # G and D forwards at a time
MAX_BATCH = 8192      # drs: candidates held at once (float32 on the CPU: 32 MB of 32x32 images)


@dataclass
class Calibration:
    """s(x) = a * D(x) + b, fitted on `n` real images and as many G samples."""
    a: float
    b: float
    n: int
    source: str          # "held-out" or "training" images
    accuracy: float      # how often the calibrated D tells a real image from a G sample (0.5: not at all)


@dataclass
class Cost:
    """What one guided draw cost: forward passes of G and D per kept sample, and seconds."""
    guide: str
    kept: int
    g_forwards: int = 0
    d_forwards: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)   # acceptance rates, restarts, ...

    def summary(self) -> dict:
        per = max(self.kept, 1)
        return {"guide": self.guide, "kept": self.kept, "g_per_sample": round(self.g_forwards / per, 2),
                "d_per_sample": round(self.d_forwards / per, 2), "seconds": round(self.seconds, 2), **self.extra}

    def line(self) -> str:
        s = self.summary()
        more = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (f"{self.guide}: {s['g_per_sample']} G and {s['d_per_sample']} D forward passes per kept sample, "
                f"{s['seconds']} s for {self.kept}{more}")


class Critic:
    """D as a score of single samples: `raw(x, y)` D's logits (B,), `__call__` the calibrated s(x)."""

    def __init__(self, D: torch.nn.Module, sampler, generator: torch.Generator | None = None):
        self.D, self.sampler = D, sampler
        self.pack = int(getattr(D, "pack", 1) or 1)
        self.cal = Calibration(1.0, 0.0, 0, "none", float("nan"))
        self.real_scores: tuple[torch.Tensor, torch.Tensor | None] | None = None  # calibrated, for mh's starts
        self.d_forwards = 0
        # a packed D's context: pack - 1 fresh G samples beside each sample, drawn anew for every score, so that no
        # fixed context favours the samples unlike it (PacGAN's D rewards a varied pack)
        self.gen = generator

    def _context(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        """(n, pack - 1, ...) G samples (no gradient), with each sample's label when conditional."""
        k = self.pack - 1
        z = self.sampler.z(n * k, self.gen)
        ctx = self.sampler.decode(z, None if y is None else y.repeat_interleave(k).cpu()).to(self.sampler.device)
        return ctx.view(n, k, *ctx.shape[1:])

    def raw(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits (B,) for x (B, ...) on D's device; differentiable in x."""
        dev = self.sampler.device
        x = x.to(dev)
        y = None if y is None else y.to(dev)
        self.d_forwards += x.shape[0]
        if self.pack == 1:
            return self.D(x, y).float()
        packed = torch.cat([x.unsqueeze(1), self._context(y, x.shape[0])], 1).flatten(0, 1)  # (B * pack, ...)
        return self.D(packed, None if y is None else y.repeat_interleave(self.pack)).float()

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.cal.a * self.raw(x, y) + self.cal.b

    @torch.no_grad()
    def scores(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Calibrated scores (B,) on the CPU, in chunks."""
        out = [self(x[i: i + CHUNK], None if y is None else y[i: i + CHUNK]).cpu() for i in range(0, len(x), CHUNK)]
        return torch.cat(out)

    @torch.no_grad()
    def calibrate(self, reals: torch.Tensor, labels: torch.Tensor | None, source: str,
                  generator: torch.Generator | None = None) -> Calibration:
        """Fit s = a * D + b on real images against as many G samples (with the reals' labels when conditional)."""
        n = reals.shape[0]
        y = labels if self.sampler.c_dim else None
        if self.sampler.c_dim and y is None:
            y = self.sampler.labels(n, None, generator)
        fake = self.sampler.decode(self.sampler.z(n, generator), y)
        self.cal = Calibration(1.0, 0.0, 0, source, float("nan"))
        s = torch.cat([self.scores(reals, y), self.scores(fake, y)]).numpy().astype(np.float64)[:, None]
        target = np.r_[np.ones(n), np.zeros(n)]
        if not np.isfinite(s).all():
            raise UserError("guide: D gives NaN or infinite scores on real or generated images; sample without "
                            "a guide (guide none)")
        fit = LogisticRegression(C=1e4).fit(s, target)
        a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        self.cal = Calibration(a, b, n, source, float(fit.score(s, target)))
        self.real_scores = (torch.from_numpy(a * s[:n, 0] + b).float(), labels)
        return self.cal


def real_images(config: dict, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """Up to n real images of a run (floats in D's range) and their labels, for the calibration: its held-out
    examples when it kept some, else its training data; and which of the two they are."""
    cfg = config_mod.from_saved(config, "guide")
    data = datasets.from_config(cfg).for_metrics(n)
    source = "training"
    if cfg.holdout:
        _, held = datasets.holdout_indices(len(data), cfg.holdout)
        data, source = data.subset(held), "held-out"
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data.batch(idx), (None if data.y is None else data.y[idx]), source


def check(guide: str, sampler) -> str:
    """`guide`, known and usable with this sampler (one that holds D), or the error that says why not."""
    if guide not in registry.GUIDES:
        raise ConfigError("guide", f"{guide!r} is not one of {', '.join(GUIDES)}")
    if registry.GUIDES[guide].uses_d and getattr(sampler, "D", None) is None:
        why = sampler.meta.get("no_guide") or "an export keeps G alone: sample the run or its checkpoint"
        raise ConfigError("guide", f"{guide} needs the run's discriminator, and {sampler.meta.get('source', 'this')} "
                                   f"has none to use ({why})")
    return guide


def sample(sampler, critic: Critic, guide: str, n: int, labels: torch.Tensor | None, generator, truncation: float,
           options: Options) -> tuple[torch.Tensor, Cost]:
    """n samples (CPU) with `guide`, for the given labels (None: unconditional); and what they cost."""
    t0, g0, d0 = time.perf_counter(), _g_count(sampler), critic.d_forwards
    fn = {"drs": _drs, "mh": _mh, "ddls": _ddls}[guide]
    x, extra = fn(sampler, critic, n, labels, generator, truncation, options)
    cal = critic.cal
    extra["calibration"] = f"{cal.n} {cal.source} images, told from G's {100 * cal.accuracy:.1f} %"
    cost = Cost(guide, n, _g_count(sampler) - g0, critic.d_forwards - d0, time.perf_counter() - t0, extra)
    return x, cost


def _g_count(sampler) -> int:
    return getattr(sampler, "g_forwards", 0)


def _uniform(shape, generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


# ----------------------------------------------------------------------------------------------------------------
# drs


def drs_f(s: torch.Tensor, s_max: float) -> torch.Tensor:
    """Azadi et al.'s F(x) before the gamma shift: log of the acceptance odds exp(s - s_max) / (1 - exp(...))."""
    d = (s - s_max).clamp(max=0)
    return d - torch.log1p(-torch.exp(d - EPS))


def _drs(sampler, critic, n, labels, generator, truncation, opt: Options):
    burn_n = max(n, 1000)
    y_burn = sampler.labels(burn_n, None, generator)
    s_burn = critic.scores(sampler.decode(sampler.z(burn_n, generator, truncation), y_burn), y_burn)
    s_max = float(s_burn.max())
    gamma = float(torch.quantile(drs_f(s_burn, s_max), opt.drs_percentile / 100))
    out, filled = None, torch.zeros(n, dtype=torch.bool)
    proposals, rounds = 0, 0
    while not filled.all():
        k = max(2, min(64, math.ceil(4 * proposals / max(int(filled.sum()), 1)) if proposals else 4))
        pending = (~filled).nonzero().squeeze(1)[: max(1, MAX_BATCH // k)]  # at most MAX_BATCH candidates at once
        idx = pending.repeat(k)                                     # k candidates for every pending slot
        y = None if labels is None else labels[idx]
        x = sampler.decode(sampler.z(len(idx), generator, truncation), y)
        s = critic.scores(x, y)
        s_max = max(s_max, float(s.max()))                          # the paper updates the bound as it goes
        accept = (_uniform(len(idx), generator) < torch.sigmoid(drs_f(s, s_max) - gamma)).view(k, -1)
        proposals += len(idx)
        has = accept.any(0)
        first = accept.float().argmax(0)                            # the first accepted candidate of each slot
        chosen = x.view(k, len(pending), *x.shape[1:])[first, torch.arange(len(pending))]
        out = torch.empty(n, *x.shape[1:]) if out is None else out
        out[pending[has]] = chosen[has]
        filled[pending[has]] = True
        rounds += 1
        if proposals > opt.max_proposals * n and not filled.all():
            raise UserError(f"guide drs: kept {int(filled.sum())} of {n} samples after {proposals:,} proposals; "
                            f"lower drs_percentile (now {opt.drs_percentile:g}) to keep more of them")
    return out, {"acceptance": round(n / proposals, 4), "burn_in": burn_n}


# ----------------------------------------------------------------------------------------------------------------
# mh


def _mh(sampler, critic, n, labels, generator, truncation, opt: Options):
    y = labels
    if critic.real_scores is None:
        raise UserError("guide mh: the chain starts at real images, and none were read for the calibration")
    real_s, real_y = critic.real_scores
    start = torch.randint(len(real_s), (n,), generator=generator)
    if y is not None and real_y is not None:                          # start each chain at a real image of its class
        start = _same_class(real_y, y, generator, start)
    x_cur, moved = _chain(sampler, critic, None, real_s[start].clone(), y, opt.mh_steps, generator, truncation)
    accepted = int(moved.sum())
    moved = moved.any(0)
    restarts = int((~moved).sum())
    if restarts:  # chains still at their real image start again from a G sample (Turner et al.)
        idx = (~moved).nonzero().squeeze(1)
        yr = None if y is None else y[idx]
        x_r = sampler.decode(sampler.z(len(idx), generator, truncation), yr)
        x_cur[idx], _ = _chain(sampler, critic, x_r, critic.scores(x_r, yr), yr, opt.mh_steps, generator, truncation)
    return x_cur, {"acceptance": round(accepted / (n * opt.mh_steps), 4), "restarts": restarts}


def _chain(sampler, critic, x_cur, s_cur, y, steps, generator, truncation):
    """`steps` independence proposals from G for each of len(s_cur) chains at scores s_cur (their samples x_cur, or
    None for chains that start at real images); returns the last states and which proposals were taken
    (steps, n)."""
    n = len(s_cur)
    taken = []
    for _ in range(steps):
        x_new = sampler.decode(sampler.z(n, generator, truncation), y)
        s_new = critic.scores(x_new, y)
        take = _uniform(n, generator) < torch.exp((s_new - s_cur).clamp(max=0))
        x_cur = torch.empty_like(x_new) if x_cur is None else x_cur
        x_cur[take], s_cur[take] = x_new[take], s_new[take]
        taken.append(take)
    return x_cur, torch.stack(taken)


def _same_class(real_y: torch.Tensor, y: torch.Tensor, generator, start: torch.Tensor) -> torch.Tensor:
    """For each wanted label, a random real image of that class (the given start where the class has none)."""
    out = start.clone()
    for c in y.unique().tolist():
        pool = (real_y == c).nonzero().squeeze(1)
        where = (y == c).nonzero().squeeze(1)
        if len(pool):
            out[where] = pool[torch.randint(len(pool), (len(where),), generator=generator)]
    return out


# ----------------------------------------------------------------------------------------------------------------
# ddls


def prior_energy_grad(z: torch.Tensor, prior: str) -> torch.Tensor:
    """grad_z of -log p0(z): z for the normal prior; 0 inside the cube and on the sphere (uniform there)."""
    return z if registry.entry(registry.PRIORS, "prior", prior).support == "space" else torch.zeros_like(z)


def project(z: torch.Tensor, prior: str) -> torch.Tensor:
    """Back onto the prior's support after a step: clamped into the cube, scaled onto the sphere."""
    support = registry.entry(registry.PRIORS, "prior", prior).support
    if support == "cube":
        return z.clamp(-1, 1)
    if support == "sphere":
        return z * (math.sqrt(z.shape[-1]) / z.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return z


def _ddls(sampler, critic, n, labels, generator, truncation, opt: Options):
    z_all = sampler.z(n, generator, truncation)
    eps = opt.ddls_step_size
    out = []
    for i in range(0, n, CHUNK):
        z = z_all[i: i + CHUNK].to(sampler.device)
        y = None if labels is None else labels[i: i + CHUNK].to(sampler.device)
        for _ in range(opt.ddls_steps):
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                s = critic(sampler.forward(z, y), y)
                (grad_s,) = torch.autograd.grad(s.sum(), z)
            noise = torch.randn(z.shape, generator=generator).to(z.device)
            z = project(z.detach() - eps / 2 * (prior_energy_grad(z.detach(), sampler.prior) - grad_s)
                        + math.sqrt(eps) * noise, sampler.prior)
        out.append(sampler.decode(z.cpu(), None if y is None else y.cpu()))
    return torch.cat(out), {"steps": opt.ddls_steps, "step_size": eps}
