import pytest
import torch

from gankit.models import dcgan, mlp


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    G = dcgan.Generator(z_dim=8, img_size=size, channels=channels, width=4)
    D = dcgan.Discriminator(img_size=size, channels=channels, width=4)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert D(x).shape == (3,)


def test_dcgan_rejects_other_sizes():
    with pytest.raises(ValueError, match="16, 32, 64 or 128"):
        dcgan.Generator(img_size=24)


def test_weights_start_from_n0_002():
    G = dcgan.Generator(z_dim=100, img_size=64, channels=3, width=64)
    w = G.net[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


def test_d_returns_unbounded_logits():
    D = dcgan.Discriminator(img_size=16, channels=1, width=8)
    with torch.no_grad():
        D.head.out.weight.mul_(1000)
    logits = D(torch.randn(8, 1, 16, 16))
    assert logits.abs().max() > 1  # no sigmoid at the end


def test_mlp_shapes_points_and_images():
    G, D = mlp.Generator(z_dim=4, out_shape=(2,), width=16), mlp.Discriminator(in_shape=(2,), width=16)
    assert G(torch.randn(5, 4)).shape == (5, 2) and D(torch.randn(5, 2)).shape == (5,)
    G = mlp.Generator(z_dim=4, out_shape=(1, 8, 8), width=16)
    assert G(torch.randn(5, 4)).shape == (5, 1, 8, 8)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_build_draws_the_same_weights_as_the_constructors_in_the_same_order(model):
    """models.build makes G, then D, with the config's arguments: a seed gives the models it always gave."""
    from gankit import config, models

    cfg = config.load(None, dict(model=model, img_size=16, z_dim=8, g_width=8, d_width=8, g_layers=2, d_layers=2,
                                 g_norm="layer", d_norm="spectral", cond="projection", c_dim=10, mbdisc=2))
    torch.manual_seed(0)
    G, D = models.build(cfg, (1, 16, 16))
    torch.manual_seed(0)
    g_args = dict(norm="layer", act="relu", slope=0.2, c_dim=10, c_embed_dim=16, vbn_ref_size=64)
    d_args = dict(norm="spectral", act="leaky_relu", slope=0.2, c_dim=10, cond="projection", c_embed_dim=16,
                  mbstd=False, mbdisc=2, pack=1, vbn_ref_size=64)
    if model == "dcgan":
        G0, D0 = dcgan.Generator(8, 16, 1, 8, up="deconv", **g_args), dcgan.Discriminator(16, 1, 8, **d_args)
    else:
        G0, D0 = mlp.Generator(8, (1, 16, 16), 8, 2, **g_args), mlp.Discriminator((1, 16, 16), 8, 2, **d_args)
    assert _same_weights(G, G0) and _same_weights(D, D0)
    torch.manual_seed(1)
    assert not _same_weights(models.build(cfg, (1, 16, 16))[0], G0)  # the comparison can tell seeds apart


def test_build_makes_the_sr_models_as_task_sr_does():
    from gankit import config, models
    from gankit.models import sr

    cfg = config.load(None, dict(task="sr", model="srresnet", img_size=16, sr_scale=2, g_width=8, d_width=8,
                                 g_layers=2))
    torch.manual_seed(0)
    G, D = models.build(cfg, (3, 16, 16))
    torch.manual_seed(0)
    assert _same_weights(G, sr.Generator(2, 3, 8, 2)) and _same_weights(D, sr.Discriminator(3, 8))
    assert G(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 16, 16)
