"""Each trick of the survey (and the modern ones) does what it says."""
import math

import pytest
import torch
import torch.nn as nn

from gankit import augment, config, latent
from gankit.models import blocks, dcgan, mlp
from gankit.step import discriminate, ema_update, instance_noise_std, lr_scale


def test_virtual_batch_norm_output_is_independent_of_the_rest_of_the_batch():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, img_size=16, channels=1, width=8, norm="virtual_batch", vbn_ref_size=16)
    G.set_reference(torch.randn(16, 8))
    z0 = torch.randn(1, 8)
    a = G(torch.cat([z0, torch.randn(5, 8)]))[0]
    b = G(torch.cat([z0, 10 * torch.randn(9, 8)]))[0]
    assert torch.allclose(a, b, atol=1e-6)
    # with ordinary batch norm the same example changes with its batch, so the check above can fail
    Gb = dcgan.Generator(z_dim=8, img_size=16, channels=1, width=8, norm="batch")
    a = Gb(torch.cat([z0, torch.randn(5, 8)]))[0]
    b = Gb(torch.cat([z0, 10 * torch.randn(9, 8)]))[0]
    assert not torch.allclose(a, b, atol=1e-4)


def test_virtual_batch_norm_uses_the_reference_statistics():
    vbn = blocks.VirtualBatchNorm(1)
    ref = torch.tensor([[0.0], [2.0], [4.0]])
    out = blocks.run_with_reference(vbn, vbn, (ref,), (torch.tensor([[6.0]]),))
    # R together with x: values 0, 2, 4, 6 -> mean 3, variance 5
    assert out.item() == pytest.approx((6 - 3) / math.sqrt(5 + 1e-5), rel=1e-5)


@pytest.mark.parametrize("z_dim", [2, 100])
def test_sphere_prior_has_norm_sqrt_z_dim(z_dim):
    z = latent.sample_z(500, z_dim, "sphere")
    assert torch.allclose(z.norm(dim=1), torch.full((500,), math.sqrt(z_dim)), rtol=1e-5)
    u = latent.sample_z(500, z_dim, "uniform")
    assert u.min() >= -1 and u.max() <= 1 and u.abs().max() > 0.9


def test_mixed_and_separate_batches_give_different_batch_norm_statistics():
    torch.manual_seed(0)
    D = dcgan.Discriminator(img_size=16, channels=1, width=8, norm="batch")
    real, fake = torch.randn(8, 1, 16, 16) + 1, torch.randn(8, 1, 16, 16) - 1
    sep_real, sep_fake = discriminate(D, real, None, fake, None, "separate")
    mix_real, mix_fake = discriminate(D, real, None, fake, None, "mixed")
    assert torch.allclose(sep_real, D(real))       # separate: the real batch is normalised on its own
    assert not torch.allclose(sep_real, mix_real, atol=1e-4)
    assert mix_real.shape == mix_fake.shape == (8,)


def test_one_sided_label_smoothing_reaches_the_loss_from_the_config():
    cfg = config.load(None, {"label_smooth": 0.9})
    assert cfg.label_smooth == 0.9
    with pytest.raises(config.ConfigError, match="label_smooth"):
        config.load(None, {"label_smooth": 1.5})


def test_instance_noise_anneals_linearly_to_zero():
    cfg = config.load(None, {"inst_noise": 0.2, "steps": 100})
    assert [instance_noise_std(cfg, s) for s in (0, 50, 100)] == pytest.approx([0.2, 0.1, 0.0])
    cfg = config.load(None, {"inst_noise": 0.2, "steps": 100, "inst_noise_steps": 20})
    assert instance_noise_std(cfg, 10) == pytest.approx(0.1) and instance_noise_std(cfg, 30) == 0


def test_lr_decay_schedule():
    cfg = config.load(None, {"steps": 100, "lr_decay_start": 0.5})
    assert [lr_scale(cfg, s) for s in (0, 49, 50, 75, 100)] == pytest.approx([1, 1, 1, 0.5, 0])


def test_minibatch_discrimination_sees_identical_examples():
    layer = blocks.MinibatchDiscrimination(4, kernels=3)
    same = layer(torch.ones(5, 4))
    assert same.shape == (5, 7)
    assert torch.allclose(same[:, 4:], torch.full((5, 3), 4.0))  # 4 others, each at distance 0
    far = layer(torch.arange(5.0)[:, None].repeat(1, 4) * 1000)
    assert far[:, 4:].max() < 1e-3


def test_minibatch_stddev_channel():
    h = torch.randn(6, 3, 4, 4)
    out = blocks.MinibatchStd()(h)
    assert out.shape == (6, 4, 4, 4)
    assert torch.allclose(out[:, 3], torch.full((6, 4, 4), h.std(0, unbiased=False).mean().item()), atol=1e-5)


def test_pacgan_packing_groups_consecutive_samples():
    x = torch.arange(8.0).view(8, 1)
    assert blocks.pack(x, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    D = mlp.Discriminator(in_shape=(2,), width=16, pack=4)
    assert D(torch.randn(8, 2)).shape == (2,)


def test_ema_update():
    G, E = nn.Linear(2, 2), nn.Linear(2, 2)
    before = E.weight.detach().clone()
    ema_update(E, G, 0.9)
    assert torch.allclose(E.weight, 0.9 * before + 0.1 * G.weight.detach())


def test_diffaugment_keeps_shape_and_gradients():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = augment.diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    holes = augment.cutout(torch.ones(64, 1, 16, 16))
    assert 0 < (holes == 0).float().mean() <= 0.25  # at most an 8x8 square of 16x16


def test_unpool_inserts_zeros_and_resampling_choices():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    assert blocks.ZeroInsertUnpool()(x)[0, 0].tolist() == [[0, 0, 1, 0], [0, 0, 0, 0], [2, 0, 3, 0], [0, 0, 0, 0]]
    for kind in ("deconv", "nearest", "unpool"):
        assert blocks.make_up(kind, 3, 5, True)(torch.randn(2, 3, 4, 4)).shape == (2, 5, 8, 8)
    for kind, layer in (("strided", nn.Conv2d), ("avgpool", nn.AvgPool2d), ("maxpool", nn.MaxPool2d)):
        block = blocks.make_down(kind, 3, 5, True)
        assert block(torch.randn(2, 3, 8, 8)).shape == (2, 5, 4, 4)
        assert any(isinstance(m, layer) for m in block.modules())


def test_activations_follow_the_config():
    G = dcgan.Generator(z_dim=4, img_size=16, channels=1, width=4, act="leaky_relu", slope=0.1)
    D = dcgan.Discriminator(img_size=16, channels=1, width=4, act="relu")
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.1 for m in G.modules())
    assert not any(isinstance(m, nn.LeakyReLU) for m in D.modules())


@pytest.mark.parametrize("norm,layer", [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d),
                                        ("layer", nn.GroupNorm), ("virtual_batch", blocks.VirtualBatchNorm)])
def test_norms_are_built(norm, layer):
    D = dcgan.Discriminator(img_size=16, channels=1, width=4, norm=norm)
    assert any(isinstance(m, layer) for m in D.modules())


def test_spectral_norm_bounds_each_weight():
    torch.manual_seed(0)
    D = dcgan.Discriminator(img_size=16, channels=1, width=8, norm="spectral")
    for _ in range(30):  # power iterations run on each training-mode forward
        D(torch.randn(4, 1, 16, 16))
    conv = D.body[2]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("cond", ["concat", "projection"])
def test_conditioning_changes_g_and_d(cond):
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, img_size=16, channels=1, width=8, c_dim=10)
    D = dcgan.Discriminator(img_size=16, channels=1, width=8, c_dim=10, cond=cond)
    z = torch.randn(1, 8).repeat(2, 1)
    x = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(x[0], x[1])
    logits = D(x[:1].repeat(2, 1, 1, 1), torch.tensor([3, 7]))
    assert not torch.allclose(logits[0], logits[1])
    with pytest.raises(ValueError, match="pass class labels"):
        G(z)


def test_projection_adds_the_inner_product():
    torch.manual_seed(0)
    D = mlp.Discriminator(in_shape=(2,), width=8, c_dim=3, cond="projection")
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 1])
    logit = D(x, y)
    f = D.body(x)
    expected = D.head.out(f).squeeze(1) + (D.head.project(y) * f).sum(1)
    assert torch.allclose(logit, expected, atol=1e-6)
