"""The training step as gankit's loop wrote it before the step moved into step.py (commit f1c4cfa), frozen here so
that a test can prove the refactored Step computes the same thing, bit for bit, in fp32 on the CPU."""

import torch

from gankit import losses
from gankit.augment import diff_augment
from gankit.latent import sample_labels, sample_z


def _discriminate(D, x_real, y_real, x_fake, y_fake, batching, pack=1):
    if batching == "mixed":
        y = None if y_real is None else torch.cat([y_real, y_fake])
        logits = D(torch.cat([x_real, x_fake]), y)
        return logits.split([x_real.shape[0] // pack, x_fake.shape[0] // pack])
    return D(x_real, y_real), D(x_fake, y_fake)


@torch.no_grad()
def _ema_update(G_ema, G, decay):
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        pe.lerp_(p, 1 - decay)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)


def _lr_scale(cfg, step):
    start = cfg.lr_decay_start * cfg.steps
    if step < start or cfg.lr_decay_start >= 1:
        return 1.0
    return max(0.0, (cfg.steps - step) / (cfg.steps - start))


def _instance_noise_std(cfg, step):
    span = cfg.inst_noise_steps or cfg.steps
    return cfg.inst_noise * max(0.0, 1.0 - step / span)


def legacy_step(cfg, G, D, G_ema, opt_g, opt_d, real_batch, step, device):
    B, c_dim, use_amp = cfg.batch_size, cfg.c_dim, False

    def d_input(x):
        sigma = _instance_noise_std(cfg, step)
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
        return diff_augment(x, cfg.diffaug) if cfg.diffaug else x

    for opt, lr in ((opt_g, cfg.g_lr), (opt_d, cfg.d_lr)):
        for group in opt.param_groups:
            group["lr"] = lr * _lr_scale(cfg, step)
    for _ in range(cfg.d_steps):
        x_real, y_real = real_batch()
        z, y_fake = sample_z(B, cfg.z_dim, cfg.prior, device=device), sample_labels(B, c_dim, device=device)
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
            x_fake = G(z, y_fake)
        xr, xf = d_input(x_real), d_input(x_fake.float())
        if cfg.r1_gamma:
            xr.requires_grad_(True)
        with torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
            d_real, d_fake = _discriminate(D, xr, y_real, xf, y_fake, cfg.d_batching, cfg.pack)
            d_real, d_fake = d_real.float(), d_fake.float()
            loss_d = losses.d_loss(cfg.loss, d_real, d_fake, cfg.label_smooth)
            penalty = torch.zeros((), device=device)
            if cfg.r1_gamma:
                penalty = penalty + losses.r1_penalty(d_real, xr, cfg.r1_gamma)
            if cfg.loss == "wgan-gp":
                alpha = torch.rand(B, *([1] * (xr.dim() - 1)), device=device)
                penalty = penalty + losses.gradient_penalty(lambda x: D(x, y_real).float(), xr, xf,
                                                            cfg.gp_weight, alpha)
        opt_d.zero_grad(set_to_none=True)
        (loss_d + penalty).backward()
        opt_d.step()

    D.requires_grad_(False)
    for _ in range(cfg.g_steps):
        z, y_fake = sample_z(B, cfg.z_dim, cfg.prior, device=device), sample_labels(B, c_dim, device=device)
        with torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
            x_fake = G(z, y_fake).float()
            if cfg.feature_matching:
                _, phi_real = D(d_input(x_real), y_real, with_features=True)
                _, phi_fake = D(d_input(x_fake), y_fake, with_features=True)
                loss_g = losses.feature_matching(phi_real.float(), phi_fake.float())
            else:
                if cfg.d_batching == "mixed":
                    _, g_fake = _discriminate(D, d_input(x_real), y_real, d_input(x_fake), y_fake, "mixed", cfg.pack)
                else:
                    g_fake = D(d_input(x_fake), y_fake)
                loss_g = losses.g_loss(cfg.loss, g_fake.float())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    D.requires_grad_(True)
    if G_ema is not None:
        _ema_update(G_ema, G, cfg.ema_decay)
    return loss_d, loss_g
