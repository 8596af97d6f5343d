"""Loss values against numbers computed by hand with math, not with the functions under test."""
import math

import pytest
import torch

from gankit import losses


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_minimax_and_ns_d_loss_with_one_sided_label_smoothing():
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    alpha = 0.9
    real = -sum(alpha * math.log(sig(v)) + (1 - alpha) * math.log(1 - sig(v)) for v in (2.0, -1.0)) / 2
    fake = -sum(math.log(1 - sig(v)) for v in (0.5, -3.0)) / 2
    for kind in ("minimax", "ns"):
        assert losses.d_loss(kind, d_real, d_fake, alpha).item() == pytest.approx(real + fake, rel=1e-6)
    # without smoothing the real term is -log D(x) only
    real1 = -sum(math.log(sig(v)) for v in (2.0, -1.0)) / 2
    assert losses.d_loss("ns", d_real, d_fake).item() == pytest.approx(real1 + fake, rel=1e-6)


def test_g_losses():
    d_fake = torch.tensor([0.5, -3.0])
    assert losses.g_loss("minimax", d_fake).item() == pytest.approx(
        sum(math.log(1 - sig(v)) for v in (0.5, -3.0)) / 2, rel=1e-6)
    assert losses.g_loss("ns", d_fake).item() == pytest.approx(-sum(math.log(sig(v)) for v in (0.5, -3.0)) / 2,
                                                               rel=1e-6)
    assert losses.g_loss("ls", d_fake).item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)
    assert losses.g_loss("hinge", d_fake).item() == pytest.approx(1.25)
    assert losses.g_loss("wgan-gp", d_fake).item() == pytest.approx(1.25)


def test_ls_hinge_wgan_d_losses():
    d_real, d_fake = torch.tensor([-0.5, 2.0]), torch.tensor([0.5, -3.0])
    assert losses.d_loss("ls", d_real, d_fake, 0.9).item() == pytest.approx(
        0.5 * ((-0.5 - 0.9) ** 2 + (2 - 0.9) ** 2) / 2 + 0.5 * (0.25 + 9) / 2)
    assert losses.d_loss("hinge", d_real, d_fake).item() == pytest.approx((1.5 + 0) / 2 + (1.5 + 0) / 2)
    assert losses.d_loss("wgan-gp", d_real, d_fake).item() == pytest.approx(-1.25 - 0.75)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'relative'; known: minimax, ns, ls, hinge, wgan-gp, rpgan"):
        losses.d_loss("relative", torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="unknown loss 'relative'"):
        losses.g_loss("relative", torch.zeros(1))


def test_losses_are_the_registry_names():
    from gankit import registry

    assert losses.LOSSES == tuple(registry.LOSSES) == ("minimax", "ns", "ls", "hinge", "wgan-gp", "rpgan")


def test_rpgan_pairs_each_real_example_with_a_generated_one():
    """R3GAN's relativistic pairing: D's loss softplus(d_fake - d_real), G's softplus(d_real - d_fake), index by
    index (not means of each side)."""
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert losses.d_loss("rpgan", d_real, d_fake).item() == pytest.approx((sp(0.5 - 2) + sp(-3 + 1)) / 2, rel=1e-6)
    assert losses.g_loss("rpgan", d_fake, d_real).item() == pytest.approx((sp(2 - 0.5) + sp(-1 + 3)) / 2, rel=1e-6)
    # pairing, not sides: swapping the generated pair changes the loss though each side's mean stays
    assert losses.d_loss("rpgan", d_real, d_fake.flip(0)).item() != pytest.approx(
        losses.d_loss("rpgan", d_real, d_fake).item())
    # G's loss gives no gradient to D's logits on real data
    r, f = d_real.clone().requires_grad_(True), d_fake.clone().requires_grad_(True)
    losses.g_loss("rpgan", f, r).backward()
    assert f.grad.abs().sum() > 0 and (r.grad is None or not r.grad.any())


def test_feature_matching():
    real, fake = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    # means (2, 3) and (1, 1): (2-1)^2 + (3-1)^2
    assert losses.feature_matching(real, fake).item() == pytest.approx(5.0)


def test_r1_of_a_linear_d_is_half_gamma_w_squared():
    w = torch.tensor([3.0, 4.0])
    x = torch.randn(5, 2, requires_grad=True)
    d = x @ w
    assert losses.r1_penalty(d, x, gamma=2.0).item() == pytest.approx(25.0)


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([0.0, 2.0])  # ||grad|| = 2 everywhere: (2 - 1)^2 * weight
    gp = losses.gradient_penalty(lambda x: x @ w, torch.randn(4, 2), torch.randn(4, 2), 10.0, torch.rand(4, 1))
    assert gp.item() == pytest.approx(10.0)
