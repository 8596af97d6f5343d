import pytest
import torch

from gankit import config, models, registry
from gankit.models import r3gan


@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_r3gan_shapes(size, channels):
    G = r3gan.Generator(z_dim=8, img_size=size, channels=channels, width=16)
    D = r3gan.Discriminator(img_size=size, channels=channels, width=16)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, size, size)
    assert D(x).shape == (3,)


def test_every_size_the_registry_declares_builds_and_no_other():
    for size in range(4, 129):
        if size in registry.R3GAN_SIZES:
            assert r3gan.stages(size)[0] * 2 ** r3gan.stages(size)[1] == size
        else:
            with pytest.raises(ValueError, match="s0 \\* 2\\^k"):
                r3gan.stages(size)


def test_blocks_start_as_the_identity():
    """The last layer of each residual block starts at zero (fix-up initialisation): a block passes x through."""
    block = r3gan.ResBlock(16, n_blocks=4)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.conv3.weight.normal_()
    assert not torch.allclose(block(x), x)


def test_d_scores_each_image_on_its_own():
    """No batch statistics anywhere in D: an image's score does not depend on the others in its batch (R1 and R2
    penalise each image's own gradient)."""
    torch.manual_seed(0)
    D = r3gan.Discriminator(img_size=8, channels=1, width=16, blocks=2)
    x = torch.randn(5, 1, 8, 8)
    together = D(x)
    alone = torch.cat([D(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_conditional_g_and_projection_d_use_the_label():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=8, img_size=8, channels=1, width=16, c_dim=10)
    D = r3gan.Discriminator(img_size=8, channels=1, width=16, c_dim=10)
    z = torch.randn(4, 8).repeat(2, 1)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    x = G(z, y)
    assert (x[:4] - x[4:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # same z, other label: another image
    scores = D(x[:4].repeat(2, 1, 1, 1), y)
    assert (scores[:4] - scores[4:]).abs().min() > 1e-5             # same image, other label: another score
    with pytest.raises(ValueError, match="pass class labels"):
        G(z)


def test_build_and_rebuild_from_spec():
    """Built through the model registry from a config; rebuilt from the spec a checkpoint carries, weight for
    weight."""
    cfg = config.load(None, dict(model="r3gan", img_size=16, z_dim=8, g_width=16, d_width=16, g_layers=2,
                                 d_layers=1, cond="projection", c_dim=10, mbstd=True))
    torch.manual_seed(0)
    G, D = models.build(cfg, (3, 16, 16))
    G2, D2 = models.generator_from_spec(G.spec), models.discriminator_from_spec(D.spec)
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    z, y = torch.randn(2, 8), torch.tensor([3, 7])
    torch.testing.assert_close(G2(z, y), G(z, y))
    torch.testing.assert_close(D2(G(z, y), y), D(G(z, y), y))
    assert len(G.stages[0]) == 2 + 2 and len(D.stages[0]) == 1 + 2  # g_layers / d_layers blocks per resolution


def test_config_refuses_sizes_r3gan_does_not_build():
    with pytest.raises(config.ConfigError, match="img_size"):
        config.load(None, dict(model="r3gan", img_size=36))


def test_he_init_makes_a_deep_mlp_g_vary_with_z():
    """PyTorch's default init shrinks the signal at every layer, so a deep mlp G without norms starts by drawing
    nearly one image for every z (the collapse a run then has to climb out of); He's init keeps the variation."""
    from gankit.models import mlp

    z = torch.randn(256, 16)
    spread = {}
    for init in ("default", "he"):
        torch.manual_seed(0)
        G = mlp.Generator(z_dim=16, out_shape=(1, 8, 8), width=128, layers=3, norm="none", init=init)
        spread[init] = G(z).std(0).mean().item()
    assert spread["he"] > 4 * spread["default"], spread
    with pytest.raises(config.ConfigError, match="g_init"):
        config.load(None, dict(model="dcgan", g_init="he"))
