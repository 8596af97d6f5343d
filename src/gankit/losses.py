"""Adversarial losses as pure functions of D's logits, and the penalties that regularise D.

Nothing here calls backward() or step(): the training loop owns the update. D has no sigmoid; the log-likelihood
losses use the logits directly (softplus / binary_cross_entropy_with_logits), which is exact and safe under mixed
precision.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from gankit import registry

# The names are declared in the registry, with the properties the loop asks about (registry.is_critic); the
# functions below implement each of them, and tests/test_registry.py checks that they do.
LOSSES = tuple(registry.LOSSES)


def d_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """D's loss on real logits and fake logits. real_target < 1 is one-sided label smoothing (Salimans et al.)."""
    if kind in ("minimax", "ns"):  # -log D(x) - log(1 - D(G(z))), the real target possibly smoothed
        real = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_target))
        fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        return real + fake
    if kind == "ls":  # least squares (Mao et al. 2017), a = 0, b = c = 1
        return 0.5 * ((d_real - real_target) ** 2).mean() + 0.5 * (d_fake**2).mean()
    if kind == "hinge":  # Lim & Ye 2017; Miyato et al. 2018
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if kind == "wgan-gp":  # the critic's Wasserstein estimate; the gradient penalty is added separately
        return d_fake.mean() - d_real.mean()
    if kind == "rpgan":  # relativistic pairing: each real example against the generated one at its index
        return F.softplus(d_fake - d_real).mean()
    raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")


def g_loss(kind: str, d_fake: torch.Tensor, d_real: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss on the logits D gives its samples (and, for a relativistic loss, on real data: d_real, whose
    gradient does not reach G)."""
    if kind == "rpgan":  # G's side of the pairing: its sample should score above the real example it is paired with
        if d_real is None:
            raise ValueError("the rpgan loss pairs G's samples with real examples: give d_real")
        return F.softplus(d_real.detach() - d_fake).mean()
    if kind == "minimax":  # min log(1 - D(G(z))) = -softplus(logit): saturates when D wins early
        return -F.softplus(d_fake).mean()
    if kind == "ns":  # non-saturating: min -log D(G(z)) = softplus(-logit)
        return F.softplus(-d_fake).mean()
    if kind == "ls":
        return 0.5 * ((d_fake - 1) ** 2).mean()
    if kind in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise ValueError(f"unknown loss {kind!r}; known: {', '.join(LOSSES)}")


def feature_matching(phi_real: torch.Tensor, phi_fake: torch.Tensor) -> torch.Tensor:
    """Salimans et al. 2016, 3.1: || E f(x) - E f(G(z)) ||^2 on D's last hidden features."""
    return ((phi_real.detach().mean(0) - phi_fake.mean(0)) ** 2).sum()


def r1_penalty(d_real: torch.Tensor, x_real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma/2 * E ||grad_x D(x)||^2 on real data. x_real must require grad. The same
    formula on generated data (d_fake, x_fake) is R2, which R3GAN adds beside R1 (Huang et al. 2024)."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], x_real: torch.Tensor, x_fake: torch.Tensor,
                     weight: float, alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): weight * E (||grad D(x_hat)|| - 1)^2, x_hat between real and fake.

    alpha (B, 1, ...) in [0, 1] is passed in so that the caller owns the randomness.
    """
    x_hat = (alpha * x_real.detach() + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ----------------------------------------------------------------------------------------------------------------
# the semi-supervised GAN (Salimans et al. 2016, section 5): D's K logits, the "generated" logit fixed at 0


def ssl_d_loss(logits_lab: torch.Tensor, labels: torch.Tensor, logits_unl: torch.Tensor,
               logits_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(supervised, unsupervised) losses of a (K+1)-way D from its K logits (B, K).

    With Z(x) = sum_k exp(l_k(x)), D's probability that x is real is Z / (Z + 1), whose logit is log Z = logsumexp(l):
    supervised: cross-entropy of the labelled batch over the K real classes;
    unsupervised: -log D(x) on unlabelled real data and -log(1 - D(G(z))) on generated data, averaged (the
    improved-gan code's 0.5 * (real + fake)).
    """
    supervised = F.cross_entropy(logits_lab, labels)
    real, fake = torch.logsumexp(logits_unl, 1), torch.logsumexp(logits_fake, 1)
    unsupervised = 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
    return supervised, unsupervised


def prediction_consistency(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between two softmax predictions over the K classes, logits (B, K), summed over the
    classes (the mean teacher's consistency cost, Tarvainen & Valpola 2017); no gradient flows into the target."""
    return (F.softmax(logits, 1) - F.softmax(target_logits.detach(), 1)).pow(2).sum(1).mean()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the softmax over the K classes, logits (B, K): low when D is sure which class x is."""
    logp = F.log_softmax(logits, 1)
    return -(logp.exp() * logp).sum(1).mean()
