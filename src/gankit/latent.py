"""The latent prior and paths through latent space.

The survey's advice "noise from a sphere rather than a cube" is the `sphere` prior: z uniform on the sphere of
radius sqrt(z_dim), where a normal z concentrates anyway; interpolating on it (slerp) stays where G was trained.
"""

from __future__ import annotations

import math

import torch

from gankit import registry

PRIORS = tuple(registry.PRIORS)  # declared in the registry, with where each one's draws lie (`support`)


def sample_z(n: int, z_dim: int, prior: str, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """n latent vectors (n, z_dim) from the prior, drawn with `generator` (the global RNG when None)."""
    if prior == "normal":
        return torch.randn(n, z_dim, generator=generator, device=device)
    if prior == "uniform":  # the cube [-1, 1]^z_dim
        return torch.rand(n, z_dim, generator=generator, device=device) * 2 - 1
    if prior == "sphere":
        z = torch.randn(n, z_dim, generator=generator, device=device)
        return project_to_sphere(z)
    raise ValueError(f"unknown prior {prior!r}; known: {', '.join(PRIORS)}")


def project_to_sphere(z: torch.Tensor) -> torch.Tensor:
    """Scale each row to norm sqrt(z_dim). A normalised Gaussian is uniform on the sphere."""
    return z * (math.sqrt(z.shape[-1]) / z.norm(dim=-1, keepdim=True).clamp_min(1e-12))


def sample_labels(n: int, c_dim: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Uniform class labels for a conditional G, None for an unconditional one."""
    if not c_dim:
        return None
    return torch.randint(c_dim, (n,), generator=generator, device=device)


def truncate(z: torch.Tensor, psi: float, prior: str) -> torch.Tensor:
    """The truncation trick as a pull towards the prior's centre: z' = psi * z (psi = 1: no change).

    For the sphere prior the result is projected back onto the sphere, which leaves it unchanged; truncation is
    then a no-op, and `interpolate`'s short paths are the way to stay near typical samples.
    """
    if psi == 1.0:
        return z
    out = z * psi
    return project_to_sphere(out) if _support(prior) == "sphere" else out


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b (..., z_dim) at fractions t (T,) -> (T, ..., z_dim).

    Norms are interpolated linearly and directions along the great circle (White 2016), so a normal or sphere
    latent keeps a typical norm along the path instead of shrinking through the middle as a straight line does.
    """
    t = t.view(-1, *([1] * a.dim()))
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * ((1 - t) * na + t * nb)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line interpolation (T, ..., z_dim): the right path inside the uniform cube."""
    t = t.view(-1, *([1] * a.dim()))
    return (1 - t) * a + t * b


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, prior: str) -> torch.Tensor:
    """`steps` points from a to b, endpoints included: slerp for normal and sphere priors, lerp for the cube."""
    t = torch.linspace(0, 1, steps, device=a.device)
    return lerp(a, b, t) if _support(prior) == "cube" else slerp(a, b, t)


def _support(prior: str) -> str:
    """Where the prior's draws lie (registry.Prior.support): space, cube or sphere."""
    return registry.entry(registry.PRIORS, "prior", prior).support
