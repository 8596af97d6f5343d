"""The architectures of gankit.registry.MODELS: the one place where an architecture is built by name."""

from __future__ import annotations

import torch.nn as nn

from gankit import registry
from gankit.models import dcgan, mlp, predict, r3gan, specgan, sr, ssl, wavegan

# The module that implements each entry of registry.MODELS (config field `model`) with a Generator and a
# Discriminator; tests/test_registry.py checks that every entry has one.
_MODULES = {"dcgan": dcgan, "r3gan": r3gan, "mlp": mlp, "srresnet": sr, "wavegan": wavegan, "specgan": specgan,
            "unet": predict}

# Every architecture a `spec` can name, so that checkpoints and exports can be rebuilt from the spec they carry: the
# registry's models, then task ssl's (K+1)-way classifier pair, which gankit/tasks/ssl/trainer.py builds itself for
# model mlp.
ARCHS = {**{name: (_MODULES[name].Generator, _MODULES[name].Discriminator) for name in registry.MODELS},
         "ssl-mlp": (ssl.Generator, ssl.Discriminator)}


def _g_args(cfg) -> dict:
    """G's arguments that dcgan and mlp share."""
    return dict(norm=cfg.g_norm, act=cfg.g_act, slope=cfg.slope, c_dim=cfg.c_dim, c_embed_dim=cfg.c_embed_dim,
                vbn_ref_size=cfg.vbn_ref_size)


def _d_args(cfg) -> dict:
    """D's arguments that dcgan and mlp share."""
    return dict(norm=cfg.d_norm, act=cfg.d_act, slope=cfg.slope, c_dim=cfg.c_dim, cond=cfg.cond,
                c_embed_dim=cfg.c_embed_dim, mbstd=cfg.mbstd, mbdisc=cfg.mbdisc, pack=cfg.pack,
                vbn_ref_size=cfg.vbn_ref_size)


# Each builder makes G first, then D: the order their weights draw from the global RNG, so a seed gives the same
# models as in every earlier version.
def _build_dcgan(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    channels = data_shape[0]  # (C, H, W)
    G = dcgan.Generator(cfg.z_dim, cfg.img_size, channels, cfg.g_width, up=cfg.g_up, **_g_args(cfg))
    D = dcgan.Discriminator(cfg.img_size, channels, cfg.d_width, down=cfg.d_down, **_d_args(cfg))
    return G, D


def _build_r3gan(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """No norms, no activations to choose: g_norm, d_norm, g_act and d_act do not apply; g_layers and d_layers are
    residual blocks per resolution."""
    channels, shared = data_shape[0], dict(c_dim=cfg.c_dim, c_embed_dim=cfg.c_embed_dim, vbn_ref_size=cfg.vbn_ref_size)
    G = r3gan.Generator(cfg.z_dim, cfg.img_size, channels, cfg.g_width, cfg.g_layers, **shared)
    D = r3gan.Discriminator(cfg.img_size, channels, cfg.d_width, cfg.d_layers, mbstd=cfg.mbstd, pack=cfg.pack,
                            **shared)
    return G, D


def _build_mlp(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    G = mlp.Generator(cfg.z_dim, data_shape, cfg.g_width, cfg.g_layers, init=cfg.g_init, **_g_args(cfg))
    D = mlp.Discriminator(data_shape, cfg.d_width, cfg.d_layers, **_d_args(cfg))
    return G, D


def _build_srresnet(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """Task sr's pair (gankit/tasks/sr/trainer.py): data_shape is that of a high-resolution image (C, H, W)."""
    channels = data_shape[0]
    return sr.Generator(cfg.sr_scale, channels, cfg.g_width, cfg.g_layers), sr.Discriminator(channels, cfg.d_width)


def _build_wavegan(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """data_shape is that of one clip, (1, audio_length)."""
    G = wavegan.Generator(cfg.z_dim, data_shape[-1], cfg.g_width, sample_rate=cfg.sample_rate, **_g_args(cfg))
    D = wavegan.Discriminator(data_shape[-1], cfg.d_width, **_d_args(cfg))
    return G, D


def _build_specgan(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """data_shape is that of one clip, (1, audio_length); G and D work on img_size x img_size spectrograms of it."""
    G = specgan.Generator(cfg.z_dim, cfg.img_size, cfg.g_width, up=cfg.g_up, audio_length=data_shape[-1],
                          sample_rate=cfg.sample_rate, **_g_args(cfg))
    D = specgan.Discriminator(cfg.img_size, cfg.d_width, down=cfg.d_down, audio_length=data_shape[-1],
                              **_d_args(cfg))
    return G, D


def _build_unet(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """Task predict's pair (gankit/tasks/predict/trainer.py): data_shape is that of a sequence (T, C, H, W) or of a
    frame."""
    channels, levels = data_shape[-3], predict.levels_for(cfg.img_size)
    G = predict.Generator(cfg.context, cfg.horizon, channels, cfg.z_dim, cfg.g_width, levels, cfg.g_norm)
    D = predict.Discriminator(cfg.context, cfg.horizon, channels, cfg.d_width, levels, cfg.d_norm)
    return G, D


_BUILDERS = {"dcgan": _build_dcgan, "r3gan": _build_r3gan, "mlp": _build_mlp, "srresnet": _build_srresnet,
             "wavegan": _build_wavegan, "specgan": _build_specgan, "unet": _build_unet}


def build(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """G and D for a resolved config (c_dim known) and the shape of one data example."""
    registry.entry(registry.MODELS, "model", cfg.model)
    return _BUILDERS[cfg.model](cfg, data_shape)


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
