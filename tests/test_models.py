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
