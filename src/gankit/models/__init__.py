"""The model registry: the one place where an architecture is chosen by name."""

from __future__ import annotations

import torch.nn as nn

from gankit.models import dcgan, mlp, sr, ssl

# The GAN's architectures (config field `model`), then those of the applications (gankit/apps/), which build theirs
# themselves; every one is here so that checkpoints and exports can be rebuilt from the `spec` they carry.
ARCHS = {"dcgan": (dcgan.Generator, dcgan.Discriminator), "mlp": (mlp.Generator, mlp.Discriminator),
         "ssl-mlp": (ssl.Generator, ssl.Discriminator), "srresnet": (sr.Generator, sr.Discriminator)}


def build(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """G and D for a resolved config (c_dim known) and the shape of one data example."""
    common = dict(norm=cfg.g_norm, act=cfg.g_act, slope=cfg.slope, c_dim=cfg.c_dim, c_embed_dim=cfg.c_embed_dim,
                  vbn_ref_size=cfg.vbn_ref_size)
    dcommon = dict(norm=cfg.d_norm, act=cfg.d_act, slope=cfg.slope, c_dim=cfg.c_dim, cond=cfg.cond,
                   c_embed_dim=cfg.c_embed_dim, mbstd=cfg.mbstd, mbdisc=cfg.mbdisc, pack=cfg.pack,
                   vbn_ref_size=cfg.vbn_ref_size)
    if cfg.model == "dcgan":
        channels = data_shape[0]
        G = dcgan.Generator(cfg.z_dim, cfg.img_size, channels, cfg.g_width, up=cfg.g_up, **common)
        D = dcgan.Discriminator(cfg.img_size, channels, cfg.d_width, down=cfg.d_down, **dcommon)
    else:
        G = mlp.Generator(cfg.z_dim, data_shape, cfg.g_width, cfg.g_layers, **common)
        D = mlp.Discriminator(data_shape, cfg.d_width, cfg.d_layers, **dcommon)
    return G, D


def generator_from_spec(spec: dict) -> nn.Module:
    """Rebuild a generator from the `spec` it carries (saved in checkpoints and exports)."""
    return _from_spec(spec, 0)


def discriminator_from_spec(spec: dict) -> nn.Module:
    """Rebuild a discriminator from its `spec` (the ssl classifier, the prior of inpainting)."""
    return _from_spec(spec, 1)


def _from_spec(spec: dict, which: int) -> nn.Module:
    spec = dict(spec)
    arch = spec.pop("arch")
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    for key in ("out_shape", "in_shape"):
        if key in spec:
            spec[key] = tuple(spec[key])
    return ARCHS[arch][which](**spec)
