"""Every switch of the config does what it says.

Each test builds from a config (`config.load` -> `models.build`, `step.Step`) and asserts the switch's effect on the
model, the loss, the data or the update, so a switch that is parsed but ignored fails here. Switches whose effect
another file already proves are named at the end of this file. The last tests go through the CLI: a config file,
conditional sampling, the 2-D points run and the errors of invalid combinations.
"""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from torch.nn.utils import parametrize

from conftest import TINY
from gankit import config, data, models
from gankit.models.blocks import MinibatchDiscrimination, MinibatchStd, VirtualBatchNorm, ZeroInsertUnpool
from gankit.step import Step, make_optimizers

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
B, Z = 8, 8
BASE = dict(data="digits", img_size=16, z_dim=Z, g_width=8, d_width=8, batch_size=B, steps=4, precision="fp32",
            channels_last=False, vbn_ref_size=8)
SHAPE = (1, 16, 16)  # one digits image at img_size 16
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, VirtualBatchNorm, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


def cfg_of(**over):
    return config.load(None, {**BASE, **over})


def build(**over):
    torch.manual_seed(0)
    return models.build(cfg_of(**over), SHAPE)


def types_in(module, kinds=(nn.Module,)):
    return {type(m) for m in module.modules() if isinstance(m, kinds)}


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", img_size=16)


def make_step(cfg, ema=False):
    torch.manual_seed(0)
    G, D = models.build(cfg, SHAPE)
    G_ema = copy.deepcopy(G).requires_grad_(False) if ema else None
    opt_g, opt_d = make_optimizers(cfg, G, D)
    return Step(cfg, G, D, G_ema, opt_g, opt_d, CPU)


def reals(ds, cfg, seed=1):
    """A real_batch callable: seeded random digits (x in [-1, 1], y when conditional)."""
    gen = torch.Generator().manual_seed(seed)

    def real_batch():
        i = torch.randint(len(ds), (cfg.batch_size,), generator=gen)
        return ds.batch(i), (ds.y[i] if cfg.c_dim else None)
    return real_batch


def constant_reals(value=0.0):
    return lambda: (torch.full((B, *SHAPE), value), None)


def spy_d(step):
    """Record every call of D during a step: (phase, input, output); phase 'd' in D's update, 'g' in G's (where
    D's weights are frozen)."""
    calls = []

    def hook(module, args, out):
        phase = "d" if next(module.parameters()).requires_grad else "g"
        calls.append((phase, args[0].detach().clone(), out))
    step.D.register_forward_hook(hook)
    return calls


def run_once(cfg, batches=None, ds=None, k=0, ema=False):
    """One training step k from a fixed seed: (step, D's calls, the tally's means)."""
    step = make_step(cfg, ema=ema)
    calls = spy_d(step)
    torch.manual_seed(7)
    step(batches or reals(ds, cfg), k)
    return step, calls, step.tally.read()


def logits(calls, phase):
    return [out for p, _, out in calls if p == phase]


# ---------------------------------------------------------------------------------------------------------------
# architecture: the layers a switch puts into G and D, and what they do


def test_model_mlp_is_fully_connected():
    G, D = build(model="mlp", g_layers=2, d_layers=2, g_norm="none")
    assert not types_in(G, (nn.Conv2d, nn.ConvTranspose2d)) and not types_in(D, (nn.Conv2d, nn.ConvTranspose2d))
    assert sum(isinstance(m, nn.Linear) for m in G.modules()) == 3  # g_layers hidden + the output layer
    assert sum(isinstance(m, nn.Linear) for m in D.modules()) == 3  # d_layers hidden + the head
    assert G(torch.randn(B, Z)).shape == (B, *SHAPE) and D(torch.randn(B, *SHAPE)).shape == (B,)
    G, D = build(model="dcgan")
    assert nn.ConvTranspose2d in types_in(G) and nn.Conv2d in types_in(D)


G_NORMS = {"batch": nn.BatchNorm2d, "virtual_batch": VirtualBatchNorm, "instance": nn.InstanceNorm2d,
           "layer": nn.GroupNorm, "none": None}


def _first_output_changes_with_the_batch(net, x0, others):
    a = net(torch.cat([x0, others]))[0]
    b = net(torch.cat([x0, 5 * others.flip(0) + 1]))[0]
    return not torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("norm", G_NORMS)
def test_g_norm_builds_its_layer(norm):
    G, _ = build(g_norm=norm)
    assert types_in(G, NORM_TYPES) == ({G_NORMS[norm]} if G_NORMS[norm] else set())
    assert (G.net[0].bias is not None) == (norm == "none")  # a conv followed by a norm needs no bias
    if norm == "virtual_batch":  # its fixed reference batch: vbn_ref_size latent vectors, saved with the weights
        assert G.ref_in.shape == (BASE["vbn_ref_size"], Z)
    G.set_reference(torch.randn(8, Z))
    # batch norm makes an example's image depend on the rest of its batch; the others do not
    torch.manual_seed(1)
    assert _first_output_changes_with_the_batch(G, torch.randn(1, Z), torch.randn(B - 1, Z)) == (norm == "batch")


D_NORMS = {**G_NORMS, "spectral": None}


@pytest.mark.parametrize("norm", D_NORMS)
def test_d_norm_builds_its_layer(norm):
    _, D = build(d_norm=norm)
    assert types_in(D, NORM_TYPES) == ({D_NORMS[norm]} if D_NORMS[norm] else set())
    weights = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(parametrize.is_parametrized(m, "weight") for m in weights) == (norm == "spectral")
    assert any(parametrize.is_parametrized(m, "weight") for m in weights) == (norm == "spectral")
    if norm == "spectral":
        return  # its power iteration moves the weights on every forward; its effect: the next test
    D.set_reference(torch.randn(8, *SHAPE))
    torch.manual_seed(1)
    assert _first_output_changes_with_the_batch(D, torch.randn(1, *SHAPE), torch.randn(B - 1, *SHAPE)) == \
        (norm == "batch")


def test_d_norm_spectral_bounds_every_layer_to_sigma_one():
    _, D = build(d_norm="spectral")
    torch.manual_seed(1)
    for _ in range(20):  # power iterations run on each training-mode forward
        D(torch.randn(4, *SHAPE))
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3  # 16 px: two convs and the head's linear layer
    for m in layers:
        assert torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)
    _, D = build(d_norm="none")  # without it the N(0, 0.02) weights are far from sigma 1
    assert all(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() < 0.5
               for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_g_act_d_act_and_slope():
    G, D = build(g_act="leaky_relu", slope=0.1, d_act="relu")
    assert {m.negative_slope for m in G.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert nn.ReLU not in types_in(G)
    assert nn.ReLU in types_in(D) and nn.LeakyReLU not in types_in(D)
    G, D = build()  # the defaults: ReLU in G, leaky ReLU (slope 0.2) in D
    assert nn.ReLU in types_in(G) and nn.LeakyReLU not in types_in(G)
    assert {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}


@pytest.mark.parametrize("up,layer", [("deconv", nn.ConvTranspose2d), ("nearest", nn.Upsample),
                                      ("unpool", ZeroInsertUnpool)])
def test_g_up_chooses_the_upsampling(up, layer):
    G, _ = build(g_up=up)
    # 16 px: 1x1 -> 4x4 is always a transposed conv, then two 2x upsamplings of the chosen kind
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == (3 if up == "deconv" else 1)
    assert sum(isinstance(m, layer) for m in G.modules()) == (3 if up == "deconv" else 2)
    assert G(torch.randn(2, Z)).shape == (2, *SHAPE)


@pytest.mark.parametrize("down,layer", [("strided", None), ("avgpool", nn.AvgPool2d), ("maxpool", nn.MaxPool2d)])
def test_d_down_chooses_the_downsampling(down, layer):
    _, D = build(d_down=down)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and {m.stride for m in convs} == ({(2, 2)} if down == "strided" else {(1, 1)})
    pools = types_in(D, (nn.AvgPool2d, nn.MaxPool2d))
    assert pools == ({layer} if layer else set())
    assert D(torch.randn(2, *SHAPE)).shape == (2,)


def test_cond_concat_feeds_the_label_to_g_and_d():
    G, D = build(cond="concat", c_dim=10, c_embed_dim=4)
    assert G.embed.weight.shape == (10, 4) and G.net[0].in_channels == Z + 4  # z and the label's embedding
    assert D.embed.weight.shape == (10, 4) and D.body[0].in_channels == 1 + 4  # image and label channels
    assert D.head.project is None
    z = torch.randn(1, Z).repeat(2, 1)
    x = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(x[0], x[1])  # same z, other class: another image
    D.eval()  # the same image, two labels: two logits
    assert not torch.allclose(*D(x[:1].repeat(2, 1, 1, 1), torch.tensor([3, 7])))
    with pytest.raises(ValueError, match="pass class labels"):
        D(x)
    G, D = build()
    assert G.embed is None and D.embed is None and D.body[0].in_channels == 1


def test_cond_projection_adds_the_inner_product_with_the_label_embedding():
    _, D = build(cond="projection", c_dim=10)
    assert D.embed is None and D.body[0].in_channels == 1  # no label channels: the label enters at the head
    D.eval()  # batch norm by its running statistics, so D.body below sees what D saw
    x, y = torch.randn(4, *SHAPE), torch.tensor([0, 3, 3, 9])
    with torch.no_grad():
        D.head.project.weight.normal_()  # init is N(0, 0.02): make the projection term large
        f = D.body(x).flatten(1)  # (4, 2w * 4 * 4)
        want = D.head.out(f).squeeze(1) + (D.head.project.weight[y] * f).sum(1)
        assert torch.allclose(D(x, y), want, atol=1e-5)
        assert not torch.allclose(D(x, y), D.head.out(f).squeeze(1), atol=1e-3)


@pytest.mark.parametrize("switch", [{"mbstd": True}, {"mbdisc": 4}, {}], ids=["mbstd", "mbdisc", "neither"])
def test_minibatch_features_make_each_logit_depend_on_the_batch(switch):
    _, D = build(d_norm="none", **switch)
    flat = 16 * 4 * 4  # D's last maps: (2w = 16, 4, 4); mbstd adds a 17th map, mbdisc one feature per kernel
    assert D.head.out.in_features == flat + (4 * 4 if "mbstd" in switch else 0) + switch.get("mbdisc", 0)
    assert (MinibatchStd in types_in(D)) == ("mbstd" in switch)
    assert (MinibatchDiscrimination in types_in(D)) == ("mbdisc" in switch)
    torch.manual_seed(1)
    x = torch.randn(B, *SHAPE)
    x2 = x.clone()
    x2[0] = 3 * torch.randn(*SHAPE)  # change one example: do the others' logits move?
    with torch.no_grad():
        D.head.out.weight.normal_()  # weights of a readable size, so a batch statistic shows in the logits
        moved = (D(x)[1:] - D(x2)[1:]).abs().max().item()
    assert (moved > 1e-4) == bool(switch)


def test_pack_2_judges_pairs():
    _, D = build(pack=2, d_norm="none")
    assert D.body[0].in_channels == 2  # two 1-channel images side by side in the channels
    torch.manual_seed(1)
    x = torch.randn(B, *SHAPE)
    out = D(x)
    assert out.shape == (B // 2,)
    x2 = x.clone()
    x2[3] = torch.randn(*SHAPE)  # sample 3 is in pack 1 (samples 2 and 3): only that logit moves
    moved = (D(x2) - out).abs() > 1e-6
    assert moved.tolist() == [False, True, False, False]


@pytest.mark.parametrize("batching", ["separate", "mixed"])
def test_pack_2_in_the_step_gives_d_b_over_2_logits(batching, digits):
    _, calls, tally = run_once(cfg_of(pack=2, d_batching=batching), ds=digits)
    # mixed: one batch of 2B images, B packs, split into B/2 real and B/2 generated logits
    assert [tuple(o.shape) for o in logits(calls, "d")] == ([(B // 2,)] * 2 if batching == "separate" else [(B,)])
    assert math.isfinite(tally["loss_d"]) and math.isfinite(tally["D(x)"])


# ---------------------------------------------------------------------------------------------------------------
# the latent prior and the data


@pytest.mark.parametrize("prior", ["normal", "uniform", "sphere"])
def test_prior_shapes_the_z_that_g_is_given(prior, digits):
    step = make_step(cfg_of(prior=prior))
    seen = []
    step.G.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    torch.manual_seed(7)
    step(reals(digits, step.cfg), 0)
    z = torch.cat(seen)  # (B, z_dim) per G call
    on_sphere = torch.allclose(z.norm(dim=1), torch.full((len(z),), math.sqrt(Z)), rtol=1e-5)
    in_cube = z.abs().max() <= 1
    assert (on_sphere, bool(in_cube)) == {"normal": (False, False), "uniform": (False, True),
                                           "sphere": (True, False)}[prior]


@pytest.mark.parametrize("channels", [0, 1, 3])
def test_channels_of_digits(channels):
    cfg = cfg_of(channels=channels)
    ds = data.from_config(cfg)
    want = 3 if channels == 3 else 1  # digits are grayscale: 0 keeps their own one channel
    x = ds.batch(torch.arange(4))
    assert x.shape == (4, want, 16, 16)
    if want == 3:
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # gray copied to R, G and B
    G, D = models.build(cfg, ds.shape)
    assert G(torch.randn(2, Z)).shape == (2, want, 16, 16) and D.body[0].in_channels == want


# ---------------------------------------------------------------------------------------------------------------
# the objective: D's and G's losses as the step computes them, from the logits D gave


def _hand_d_loss(kind, r, f):
    if kind in ("minimax", "ns"):
        return F.softplus(-r).mean() + F.softplus(f).mean()
    if kind == "ls":
        return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()
    if kind == "hinge":
        return torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean()
    return f.mean() - r.mean()


def _hand_g_loss(kind, g):
    return {"minimax": -F.softplus(g).mean(), "ns": F.softplus(-g).mean(), "ls": 0.5 * ((g - 1) ** 2).mean(),
            "hinge": -g.mean(), "wgan-gp": -g.mean()}[kind]


@pytest.mark.parametrize("kind", ["minimax", "ns", "ls", "hinge", "wgan-gp"])
def test_loss_is_the_one_the_step_optimises(kind, digits):
    _, calls, tally = run_once(cfg_of(loss=kind), ds=digits)
    d_real, d_fake = logits(calls, "d")[:2]
    (g_fake,) = logits(calls, "g")
    assert tally["loss_d"] == pytest.approx(_hand_d_loss(kind, d_real, d_fake).item(), rel=1e-5, abs=1e-6)
    assert tally["loss_g"] == pytest.approx(_hand_g_loss(kind, g_fake).item(), rel=1e-5, abs=1e-6)
    # wgan-gp: D is called a third time, on points between real and fake, and the penalty is in D's loss
    assert (len(logits(calls, "d")) == 3) == (kind == "wgan-gp")
    assert (tally["penalty"] > 0) == (kind == "wgan-gp")


def test_gp_weight_scales_the_gradient_penalty(digits):
    p = {w: run_once(cfg_of(loss="wgan-gp", gp_weight=w), ds=digits)[2]["penalty"] for w in (10.0, 20.0)}
    assert p[10.0] > 0 and p[20.0] == pytest.approx(2 * p[10.0], rel=1e-5)


def test_label_smooth_lowers_d_s_real_target(digits):
    out = {s: run_once(cfg_of(label_smooth=s), ds=digits) for s in (1.0, 0.9)}
    d_real = logits(out[1.0][1], "d")[0]
    assert torch.equal(d_real, logits(out[0.9][1], "d")[0])  # the same D and batch: the same logits
    # BCE(r, 0.9) - BCE(r, 1) = -0.9 log s(r) - 0.1 log(1 - s(r)) + log s(r) = 0.1 (log s(r) - log(1 - s(r))) = 0.1 r
    diff = out[0.9][2]["loss_d"] - out[1.0][2]["loss_d"]
    assert diff == pytest.approx(0.1 * d_real.mean().item(), rel=1e-4, abs=1e-6)
    assert abs(diff) > 1e-6


@pytest.mark.parametrize("fm", [True, False])
def test_feature_matching_makes_g_match_d_s_mean_features(fm, digits):
    _, calls, tally = run_once(cfg_of(feature_matching=fm), ds=digits)
    g_calls = logits(calls, "g")
    if fm:  # D is asked for its features of a real and a generated batch: || E phi(x) - E phi(G(z)) ||^2
        (_, phi_real), (_, phi_fake) = g_calls
        assert phi_real.shape == phi_fake.shape == (B, 16 * 4 * 4)
        want = ((phi_real.mean(0) - phi_fake.mean(0)) ** 2).sum().item()
    else:  # the adversarial loss (ns) on D's logits for the generated batch
        (g_fake,) = g_calls
        want = F.softplus(-g_fake).mean().item()
    assert tally["loss_g"] == pytest.approx(want, rel=1e-5)


def test_r1_gamma_and_r1_every_weight_the_penalty(digits):
    def penalty(**over):
        return run_once(cfg_of(**over), ds=digits)[2]["penalty"]
    p1 = penalty(r1_gamma=1.0)
    assert p1 > 0 and penalty() == 0
    assert penalty(r1_gamma=2.0) == pytest.approx(2 * p1, rel=1e-5)
    assert penalty(r1_gamma=1.0, r1_every=4) == pytest.approx(4 * p1, rel=1e-5)  # lazy: 4x as heavy, 1/4 as often


def test_r2_gamma_penalises_d_s_gradient_on_generated_images(digits):
    """R2 is R1's formula on G's images: it adds to the penalty, in proportion to r2_gamma, and beside R1 the two
    add up (R3GAN's regulariser)."""
    def penalty(**over):
        return run_once(cfg_of(**over), ds=digits)[2]["penalty"]
    p2 = penalty(r2_gamma=1.0)
    assert p2 > 0 and penalty(r2_gamma=2.0) == pytest.approx(2 * p2, rel=1e-5)
    assert penalty(r1_gamma=1.0, r2_gamma=1.0) == pytest.approx(penalty(r1_gamma=1.0) + p2, rel=1e-5)


def test_rpgan_g_loss_pairs_g_s_batch_with_the_real_batch(digits):
    """Under rpgan, G's update asks D for the real batch too, and G's loss is the pairing of the two."""
    _, calls, tally = run_once(cfg_of(loss="rpgan", reuse_fake=True), ds=digits)
    g_fake, g_real = logits(calls, "g")  # exactly two calls of D in G's update: G's batch, then the real one
    g_inputs = [x for p, x, _ in calls if p == "g"]
    assert torch.equal(g_inputs[1], [x for p, x, _ in calls if p == "d"][0])  # the real batch of D's update
    assert tally["loss_g"] == pytest.approx(F.softplus(g_real - g_fake).mean().item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# what D sees: instance noise and DiffAugment, in the step


def _d_inputs(cfg, k, value=0.0):
    """What D is shown in its update at step k, with every real image the constant `value`: [real, generated],
    and G's own images, which the generated input should equal before D's input transform."""
    step = make_step(cfg)
    calls = spy_d(step)
    made = []
    step.G.register_forward_hook(lambda *args: made.append(args[2].detach().clone()))
    torch.manual_seed(7)
    step(constant_reals(value), k)
    return [x for p, x, _ in calls if p == "d"], made[0]


def test_inst_noise_adds_annealed_noise_to_d_s_inputs():
    cfg = cfg_of(inst_noise=0.1, inst_noise_steps=10)
    (real, fake), made = _d_inputs(cfg, 0)
    assert real.std().item() == pytest.approx(0.1, rel=0.1)  # the real batch is all zeros: D sees the noise
    assert (fake - made).std().item() == pytest.approx(0.1, rel=0.1)  # G's images get the same noise
    assert _d_inputs(cfg, 5)[0][0].std().item() == pytest.approx(0.05, rel=0.1)  # half way: half the std
    (real, fake), made = _d_inputs(cfg, 10)                                     # annealed to 0 after 10 steps
    assert torch.equal(real, torch.zeros(B, *SHAPE)) and torch.equal(fake, made)
    (real, fake), made = _d_inputs(cfg_of(), 0)                                 # off: D sees the batches themselves
    assert torch.equal(real, torch.zeros(B, *SHAPE)) and torch.equal(fake, made)


@pytest.mark.parametrize("op", ["color", "translation", "cutout"])
def test_diffaug_transforms_what_d_sees(op):
    real = _d_inputs(cfg_of(diffaug=op), 0, value=1.0)[0][0]  # an all-ones real batch, augmented
    per_image = real.flatten(1)
    zeros = (per_image == 0).sum(1)
    if op == "color":  # on a flat image only the brightness shift shows: each image flat, at another level
        assert (per_image.std(1) < 1e-5).all() and not torch.allclose(per_image, torch.ones_like(per_image))
    if op == "translation":  # shifted by up to 2 px, the rest filled with zeros
        assert (zeros > 0).any() and (zeros <= 16 * 16 - 14 * 14).all()
    if op == "cutout":  # a zero square of 8x8, at least its 4x4 corner inside the image
        assert ((zeros >= 16) & (zeros <= 64)).all()
    assert torch.equal(_d_inputs(cfg_of(), 0, value=1.0)[0][0], torch.ones(B, *SHAPE))  # off: D sees the batch


# ---------------------------------------------------------------------------------------------------------------
# the update: how many, how large, and the average of G


def _adam_steps(opt):
    return {int(s["step"]) for s in opt.state.values()}


@pytest.mark.parametrize("d_steps,g_steps", [(1, 1), (3, 1), (1, 2)])
def test_d_steps_and_g_steps_count_the_updates(d_steps, g_steps, digits):
    cfg = cfg_of(d_steps=d_steps, g_steps=g_steps)
    step, calls, _ = run_once(cfg, ds=digits)
    assert _adam_steps(step.opt_d) == {d_steps} and _adam_steps(step.opt_g) == {g_steps}
    assert len(logits(calls, "d")) == 2 * d_steps and len(logits(calls, "g")) == g_steps


@pytest.mark.parametrize("batching", ["separate", "mixed"])
def test_d_batching_mixed_gives_d_one_batch_of_real_and_fake(batching, digits):
    _, calls, _ = run_once(cfg_of(d_batching=batching), ds=digits)
    sizes = {phase: [len(x) for p, x, _ in calls if p == phase] for phase in "dg"}
    assert sizes == ({"d": [B, B], "g": [B]} if batching == "separate" else {"d": [2 * B], "g": [2 * B]})


def test_lr_decay_start_lowers_both_learning_rates_at_the_end(digits):
    lrs = {}
    for start in (1.0, 0.5):
        cfg = cfg_of(lr_decay_start=start, g_lr=1e-3, d_lr=5e-4, steps=4)
        step = make_step(cfg)
        batches = reals(digits, cfg)
        lrs[start] = []
        for k in range(4):
            step(batches, k)
            lrs[start] += [step.opt_g.param_groups[0]["lr"], step.opt_d.param_groups[0]["lr"]]
    assert lrs[1.0] == [1e-3, 5e-4] * 4
    # from step 2 (half of 4) linearly to 0 at step 4: x 1, 1, 1, 0.5
    assert lrs[0.5] == pytest.approx([1e-3, 5e-4] * 3 + [5e-4, 2.5e-4])


def test_g_lr_d_lr_and_betas_reach_adam():
    G, D = build()
    opt_g, opt_d = make_optimizers(cfg_of(g_lr=1e-3, d_lr=5e-4, beta1=0.0, beta2=0.9), G, D)
    assert (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]) == (1e-3, 5e-4)
    assert opt_g.param_groups[0]["betas"] == opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_ema_decay_averages_g_in_the_step(digits):
    cfg = cfg_of(ema_decay=0.9)
    step = make_step(cfg, ema=True)
    before = [p.detach().clone() for p in step.G_ema.parameters()]
    step(reals(digits, cfg), 0)
    for e, b, g in zip(step.G_ema.parameters(), before, step.G.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * g.detach(), atol=1e-6)
    assert any(not torch.equal(e, g) for e, g in zip(step.G_ema.parameters(), step.G.parameters()))
    # ema_rampup: at step 0 the horizon is one step, so G_ema becomes G
    cfg = cfg_of(ema_decay=0.9, ema_rampup=0.5)
    step = make_step(cfg, ema=True)
    step(reals(digits, cfg), 0)
    assert all(torch.allclose(e, g, atol=1e-7) for e, g in zip(step.G_ema.parameters(), step.G.parameters()))


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_arithmetic_of_d_s_forward(precision, dtype, digits):
    _, calls, tally = run_once(cfg_of(precision=precision), ds=digits)
    assert {o.dtype for _, _, o in calls} == {dtype}
    assert math.isfinite(tally["loss_d"])


# Covered elsewhere (the effect asserted there):
# - reuse_fake: tests/test_step.py::test_reuse_fake_saves_one_generator_forward (G's forward 2 vs 4 times).
# - ema_decay() with ema_rampup, lazy R1 skipping steps: tests/test_step.py::test_ema_rampup_and_lazy_r1.
# - precision auto: tests/test_step.py::test_precision_auto_follows_the_hardware.
# - compile: tests/test_step.py::test_compiled_step_trains; channels_last with bf16:
#   tests/test_step.py::test_bf16_and_channels_last_train_to_finite_weights_near_fp32.
# - xflip: tests/test_folder.py::test_xflip_draws_each_image_and_its_mirror_once_per_epoch and
#   ::test_reals_grid_and_xflip_in_the_run (mirrored images in the drawn batches, in a run).
# - resize: tests/test_folder.py::test_resize_policies (crop, pad, stretch pixel by pixel).
# - background: tests/test_images.py::test_background_is_a_config_field (transparent pixels take the colour).
# - virtual batch norm's statistics (reference and example, weighted n/(n+1) and 1/(n+1)):
#   tests/test_tricks.py::test_virtual_batch_norm_uses_the_reference_statistics.


# ---------------------------------------------------------------------------------------------------------------
# the CLI: a config file, conditional sampling, points, and invalid combinations


def test_a_config_file_sets_the_same_fields(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": "digits", "img_size": 16, "z_dim": 8, "g_width": 8, "d_width": 8,
                                   "batch_size": 16, "steps": 3, "d_steps": 3, "g_steps": 2, "g_lr": 1e-3,
                                   "d_lr": 5e-4, "cond": "concat", "g_norm": "virtual_batch", "d_down": "avgpool"}))
    code, _, err = cli("train", "--config", cfg, "--out", tmp_path, "--name", "r", "--no-progress")
    assert code == 0, err
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["config"]["c_dim"] == 10                          # taken from the data set
    assert ckpt["opt_d"]["state"][0]["step"].item() == 9          # 3 steps x d_steps 3
    assert ckpt["opt_g"]["state"][0]["step"].item() == 6          # 3 steps x g_steps 2
    assert ckpt["opt_g"]["param_groups"][0]["lr"] == 1e-3 and ckpt["opt_d"]["param_groups"][0]["lr"] == 5e-4


def test_unknown_field_in_a_config_file_is_named(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("g_widht: 8\n")
    code, _, err = cli("train", "--config", cfg)
    assert code == 2 and "g_widht" in err and "g_width" in err


def test_conditional_sampling_and_class_grid(tmp_path, cli):
    code, _, err = cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "c", "--cond", "projection")
    assert code == 0, err
    code, _, err = cli("sample", tmp_path / "c", "--class", 3, "--n", 5, "--out", tmp_path / "s.npz")
    assert code == 0, err
    s = np.load(tmp_path / "s.npz")
    assert s["images"].shape == (5, 16, 16, 1) and s["labels"].tolist() == [3] * 5
    code, _, err = cli("sample", tmp_path / "c", "--class-grid", "--n", 4, "--out", tmp_path / "g.png")
    assert code == 0, err
    from PIL import Image
    w, h = Image.open(tmp_path / "g.png").size
    # 4 columns, one row per class, 16 px + 2 px padding, enlarged 2x for display (viz.display_scale)
    assert (w, h) == (2 * (2 + 4 * 18), 2 * (2 + 10 * 18))
    code, _, err = cli("sample", tmp_path / "c", "--class", 12, "--out", tmp_path / "t.npz")
    assert code == 2 and "0..9" in err


def test_class_grid_rows_share_z(tmp_path, cli):
    from gankit.sample import load_sampler
    cli("train", *TINY, "--steps", 1, "--out", tmp_path, "--name", "c", "--cond", "concat", "--g_norm", "none")
    sampler = load_sampler(tmp_path / "c")
    grid = sampler.class_grid(3, torch.Generator().manual_seed(1))
    z = sampler.z(3, torch.Generator().manual_seed(1))
    assert torch.allclose(grid[3:6], sampler.decode(z, torch.full((3,), 1)), atol=1e-6)


def test_class_flag_needs_a_conditional_model(tiny_run, tmp_path, cli):
    code, _, err = cli("sample", tiny_run, "--class", 1, "--out", tmp_path / "s.npz")
    assert code == 2 and "conditional" in err


def test_points_run_samples_points(tmp_path, cli):
    code, out, err = cli("train", "--data", "ring", "--model", "mlp", "--z_dim", 2, "--g_width", 16, "--d_width",
                         16, "--n_points", 512, "--batch_size", 64, "--steps", 3, "--eval_metrics", "modes",
                         "--eval_n", 200, "--out", tmp_path, "--name", "p", "--no-progress")
    assert code == 0, err
    assert "modes" in out  # the final evaluation is printed
    assert (tmp_path / "p" / "samples" / "step-0000003.png").is_file()  # the scatter plot
    code, _, err = cli("sample", tmp_path / "p", "--n", 50, "--out", tmp_path / "p.npz")
    assert code == 0, err
    pts = np.load(tmp_path / "p.npz")["points"]
    assert pts.shape == (50, 2) and pts.dtype == np.float32


@pytest.mark.parametrize("args,needle", [
    (["--data", "ring", "--model", "dcgan"], "model: 2-D data set ring needs model mlp"),
    (["--data", "ring", "--model", "mlp", "--cond", "concat"], "has no class labels"),
    (["--pack", "3"], "pack: batch_size 16 must be a multiple of 3"),
    (["--model", "mlp", "--g_norm", "instance"], "instance norm needs feature maps"),
    (["--diffaug", "flip"], "diffaug: unknown op flip"),
    (["--cond", "concat", "--c_dim", "7"], "has 10 classes, not 7"),
])
def test_invalid_combinations_name_the_field(tmp_path, cli, args, needle):
    code, _, err = cli("train", *TINY, "--steps", 1, "--out", tmp_path, *args)
    assert code == 2 and needle in err, err
