"""The semi-supervised GAN (task ssl): its losses, its D, the labelled split, training, resume and `gankit classify`."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import gankit
from gankit import data as datasets, losses
from gankit.tasks.ssl import classify
from gankit.tasks.ssl import trainer as ssl
from gankit.errors import ConfigError, UserError
from gankit.metrics.classifier import split_indices
from gankit.models import ssl as ssl_models

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny semi-supervised GAN on the 8x8 digits: 5 labels per class, 100 images held out.
SSL = ["--task", "ssl", "--model", "mlp", "--data", "digits", "--img_size", "8", "--holdout", "100",
       "--labels_per_class", "5", "--z_dim", "8", "--g_width", "16", "--g_layers", "1", "--d_width", "32",
       "--d_layers", "3", "--batch_size", "32", "--ema_decay", "0.9", "--ssl_consistency", "1", "--log_every", "5",
       "--eval_every", "10", "--sample_every", "10", "--ckpt_every", "0", "--precision", "fp32", "--no-progress"]


def test_ssl_losses_by_hand():
    # K = 4 classes, all logits 0: Z = 4, p(real) = 4/5; the supervised loss is log 4.
    zeros = torch.zeros(3, 4)
    sup, unsup = losses.ssl_d_loss(zeros, torch.tensor([0, 1, 2]), zeros, zeros)
    assert sup.item() == pytest.approx(math.log(4))
    assert unsup.item() == pytest.approx(0.5 * (-math.log(4 / 5) - math.log(1 / 5)))
    # A confident, right D: large logit on the true class of real data, very negative logits for fakes.
    big = torch.tensor([[20.0, 0, 0, 0]])
    sup, unsup = losses.ssl_d_loss(big, torch.tensor([0]), big, torch.full((1, 4), -20.0))
    assert sup.item() < 1e-6 and unsup.item() < 1e-6
    assert losses.prediction_entropy(zeros).item() == pytest.approx(math.log(4))
    assert losses.prediction_entropy(big).item() < 1e-6
    # consistency: 0 for the same prediction, 2 for two certain and different ones; the target takes no gradient
    other = torch.tensor([[0, 20.0, 0, 0]], requires_grad=True)
    assert losses.prediction_consistency(big, big).item() == 0
    mine = big.clone().requires_grad_(True)
    c = losses.prediction_consistency(mine, other)
    assert c.item() == pytest.approx(2.0)
    c.backward()
    assert other.grad is None and mine.grad is not None


def test_consistency_ramps_up_and_needs_the_weight_average(cli):
    ramp = ssl.CONSISTENCY_RAMPUP
    assert ssl.consistency_scale(0) == pytest.approx(math.exp(-5))
    assert ssl.consistency_scale(ramp // 4) < ssl.consistency_scale(ramp // 2) < 1
    assert ssl.consistency_scale(ramp) == 1 == ssl.consistency_scale(3 * ramp)
    code, _, err = cli("train", *SSL[:-1], "--ema_decay", "0", "--dry-run")
    assert code == 2 and "ssl_consistency" in err and "ema_decay" in err


def test_d_init_noise_and_fixed_scales():
    D = ssl_models.Discriminator((1, 8, 8), num_classes=10, width=32, layers=3)
    assert ssl_models.d_widths(1000, 5) == [1000, 500, 250, 250, 250]
    x = torch.rand(200, 1, 8, 8) * 2 - 1
    D.init_from_batch(x)
    a = D.hidden[0]((x.flatten(1) + 1) / 2)                      # first layer's pre-activations
    assert a.mean(0).abs().max() < 1e-4 and (a.std(0) - 1).abs().max() < 1e-3
    scales = [layer.parametrizations.weight.original0 for layer in D.hidden]
    assert all(not s.requires_grad for s in scales)
    assert D.out.parametrizations.weight.original0.requires_grad
    D.eval()
    assert torch.equal(D(x[:4]), D(x[:4]))                      # no noise when judging
    D.train()
    assert not torch.equal(D(x[:4]), D(x[:4]))                  # Gaussian noise while training
    logits, phi = D(x[:4], with_features=True)
    assert logits.shape == (4, 10) and phi.shape == (4, 8)


def test_labelled_indices_per_class_and_seeded():
    y = torch.arange(10).repeat(30)
    a, b, c = (ssl.labelled_indices(y, 3, s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.bincount(y[a]).tolist() == [3] * 10
    with pytest.raises(ConfigError, match="labels_per_class"):
        ssl.labelled_indices(y, 31, 0)


def test_holdout_is_the_start_of_the_classifier_held_out_part():
    train, held = datasets.holdout_indices(1000, 50)
    _, clf_held = split_indices(1000)
    assert torch.equal(held, clf_held[:50])
    assert len(train) == 950 and not set(train.tolist()) & set(held.tolist())
    with pytest.raises(UserError, match="holdout"):
        datasets.holdout_indices(1000, 201)


def test_config_checks_the_task(cli):
    code, _, err = cli("train", "--task", "ssl", "--model", "mlp", "--dry-run")
    assert code == 2 and "holdout" in err
    code, _, err = cli("train", "--task", "ssl", "--holdout", "10", "--dry-run")
    assert code == 2 and "model" in err and "mlp" in err
    code, _, err = cli("train", *SSL[:-1], "--eval_metrics", "fid", "--dry-run")
    assert code == 2 and "eval_metrics" in err


def test_the_classifier_learns_from_five_labels_a_class(tmp_path, cli):
    # 300 steps at 16 px (the distortions shift by 2 px: too much for 8 px) with the preset's learning rates: well
    # below chance's 90 % (30 to 38 % on seeds 0-2), where a classifier that ignores its labels stays near 90 %
    flags = [*SSL, "--img_size", "16", "--g_lr", "0.003", "--d_lr", "0.003", "--log_every", "50", "--eval_every",
             "100", "--sample_every", "300"]
    code, _, err = cli("train", *flags, "--steps", "300", "--out", tmp_path, "--name", "r")
    assert code == 0, err
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert r["held_out_error"] < 0.6, r
    assert r["baseline_error"] < 0.5, r      # the supervised CNN on the same 50 labels
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    errors = [row["eval/held_out_error"] for row in rows if "eval/held_out_error" in row]
    assert len(errors) == 3 and errors[-1] < errors[0], errors


def test_train_classify_and_resume(tmp_path, cli):
    code, out, err = cli("train", *SSL, "--steps", "20", "--out", tmp_path, "--name", "full")
    assert code == 0, err
    run = tmp_path / "full"
    r = json.loads((run / "results.json").read_text())
    assert r["labelled"] == 50 and r["unlabelled"] == 1797 - 100 - 50 and r["held_out"] == 100
    # pinned on this tiny seeded run (the same at one and two threads): a change to ssl's arithmetic shows here
    assert (r["held_out_error"], r["baseline_error"]) == pytest.approx((0.92, 0.15))
    assert "held-out error" in out and (run / "samples" / "step-0000020.png").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["eval/held_out_error"] for row in rows if "eval/held_out_error" in row][-1] == r["held_out_error"]

    # the classifier, from Python and from the CLI, agrees with the run's own score
    model = classify.load_classifier(run)
    held = datasets.load("digits", img_size=8).subset(datasets.holdout_indices(1797, 100)[1])
    assert classify.error(model, held.floats(), held.y) == pytest.approx(r["held_out_error"])
    code, out, err = cli("classify", run, "--images", "heldout", "--out", tmp_path / "labels.csv")
    assert code == 0, err
    assert f"{r['held_out_error']:.2%}" in out
    assert f"{r['held_out_error']:.2%}" in gankit.classify(run, "heldout")                    # from Python
    assert len((tmp_path / "labels.csv").read_text().splitlines()) == 101
    assert cli("classify", run, "--images", "heldout", "--out", tmp_path / "labels.csv")[0] == 2  # not overwritten

    # resume: 10 steps, then 10 more, equals 20 at once (D, its average, G and the optimizers)
    assert cli("train", *SSL, "--steps", "10", "--ckpt_every", "10", "--out", tmp_path, "--name", "half")[0] == 0
    code, _, err = cli("train", "--resume", tmp_path / "half", "--steps", "20", "--no-progress")
    assert code == 0, err
    a = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "checkpoints" / "latest.pt", weights_only=True)
    for part in ("G", "D", "D_ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs after resume"


def _ssl_cfg(**changes):
    from gankit import config

    return config.load(None, dict(zip([a.lstrip("-") for a in SSL[:-1:2]], SSL[1:-1:2]), **changes))


def _d_after_one_step(cfg, x, y, variant: int, vary, at: int = 0) -> torch.Tensor:
    """D's output bias after one SSLStep at step `at` from a fixed start, where vary(G, D) -> (G, teacher), called
    under the seed `variant`, makes the one thing that differs between the calls compared."""
    from gankit.step import make_optimizers

    torch.manual_seed(0)
    G, D = ssl.build_models(cfg, (1, 8, 8), 10)
    D.init_from_batch(x)
    torch.manual_seed(variant)
    G, teacher = vary(G, D)
    opt_g, opt_d = make_optimizers(cfg, G, D)
    step = ssl.SSLStep(cfg, G, D, teacher, opt_g, opt_d, torch.device("cpu"))
    torch.manual_seed(3)
    step(lambda: (x, y, x), at)
    return D.out.bias.detach().clone()


def test_unlabeled_weight_zero_leaves_g_out_of_d(tmp_path):
    """With unlabeled_weight 0, D's update depends on the labelled batch alone: two different G give the same D."""
    cfg = _ssl_cfg(unlabeled_weight=0, ssl_consistency=0)
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8) * 2 - 1
    y = torch.randint(10, (32,))
    other_g = lambda G, D: (ssl_models.Generator(8, (1, 8, 8), 16, 1), None)   # noqa: E731
    outs = [_d_after_one_step(cfg, x, y, g_seed, other_g) for g_seed in (1, 2)]
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], torch.zeros_like(outs[0]))


def test_consistency_pulls_d_towards_its_teacher():
    """D's update depends on its weight average (two different teachers, the same everything else) exactly when
    ssl_consistency > 0."""
    import copy

    def other_teacher(G, D):
        teacher = copy.deepcopy(D)
        teacher.out.bias.data.normal_(0, 3)                       # two teachers that predict different classes
        return G, teacher.eval()

    x = torch.rand(32, 1, 8, 8) * 2 - 1
    y = torch.randint(10, (32,))
    for weight in (0.0, 5.0):
        cfg = _ssl_cfg(ssl_consistency=weight)
        outs = [_d_after_one_step(cfg, x, y, teacher_seed, other_teacher, at=ssl.CONSISTENCY_RAMPUP)  # past the ramp
                for teacher_seed in (1, 2)]
        assert torch.equal(outs[0], outs[1]) == (weight == 0)
