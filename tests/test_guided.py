"""D-guided sampling (gankit.guided) on a problem whose answer is known: G draws from a broad Gaussian, the data is
a mixture of two tight ones, and D's logit is the exact log density ratio. Each guide must move the samples onto the
modes, the calibration must recover the ratio's own scale, a packed D must score each sample alone; then the same
options through the CLI, the Python sampler and `gankit eval` on a tiny trained run."""
import json
import math

import pytest
import torch
from torch import nn

from gankit import guided
from gankit.config import GuideOptions
from gankit.errors import ConfigError
from gankit.sample import Sampler, load_sampler

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

MODES = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
SIG, SCALE = 0.3, 3.0   # the data's modes' std; G(z) = SCALE * z, so p_G = N(0, SCALE^2 I)


def log_data(x, modes=MODES):
    d = ((x[:, None, :] - modes) ** 2).sum(-1)
    return torch.logsumexp(-d / (2 * SIG**2), 1) - math.log(len(modes)) - 2 * math.log(SIG) - math.log(2 * math.pi)


def log_g(x):
    return -(x**2).sum(-1) / (2 * SCALE**2) - 2 * math.log(SCALE) - math.log(2 * math.pi)


class BroadG(nn.Module):
    z_dim, out_shape = 2, (2,)

    def __init__(self, c_dim=0):
        super().__init__()
        self.c_dim = c_dim
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, z, y=None):
        return SCALE * z * self.w


class RatioD(nn.Module):
    """logit = log p_data(x) - log p_G(x), the optimal D's; conditional: class k's data is mode k alone. With
    pack > 1 it scores the first sample of each pack and ignores the rest."""

    def __init__(self, pack=1):
        super().__init__()
        self.pack = pack

    def forward(self, x, y=None):
        if self.pack > 1:
            x = x.view(-1, self.pack, x.shape[-1])[:, 0]
            y = None if y is None else y.view(-1, self.pack)[:, 0]
        if y is None:
            return log_data(x) - log_g(x)
        return torch.stack([log_data(x[i: i + 1], MODES[int(y[i])][None]) for i in range(len(x))]).squeeze(1) - log_g(x)


def near_mode(x, modes=MODES):
    """The share of samples within 3 sigma of a mode."""
    return (((x[:, None, :] - modes) ** 2).sum(-1).min(1).values.sqrt() < 3 * SIG).float().mean().item()


def reals(n, gen):
    return MODES[torch.randint(2, (n,), generator=gen)] + SIG * torch.randn(n, 2, generator=gen)


def mixture_sampler(pack=1, c_dim=0, **options):
    s = Sampler(BroadG(c_dim), "normal", D=RatioD(pack), meta={"source": "test"}, options=GuideOptions(**options))
    gen = torch.Generator().manual_seed(0)
    s._critic = guided.Critic(s.D, s, gen)
    x = reals(2000, gen)
    s._critic.calibrate(x, (x[:, 0] < 0).long() if c_dim else None, "test", gen)
    return s


def test_calibration_recovers_the_scale_of_an_exact_log_ratio():
    """Platt scaling of the optimal D's logit is the identity: a near 1, b near 0. A D whose logit is 3x too loud
    is scaled back by 1/3."""
    cal = mixture_sampler()._critic.cal
    assert cal.a == pytest.approx(1.0, abs=0.15) and cal.b == pytest.approx(0.0, abs=0.3)
    loud = Sampler(BroadG(), "normal", D=RatioD(), meta={"source": "test"})
    loud.D.forward = lambda x, y=None: 3 * (log_data(x) - log_g(x))
    gen = torch.Generator().manual_seed(0)
    critic = guided.Critic(loud.D, loud, gen)
    assert critic.calibrate(reals(2000, gen), None, "test", gen).a == pytest.approx(1 / 3, abs=0.06)


@pytest.mark.parametrize("guide,options,least", [("drs", {"drs_percentile": 99}, 0.6), ("mh", {}, 0.8),
                                                 ("ddls", {"ddls_steps": 40}, 0.85)])
def test_each_guide_moves_samples_onto_the_modes(guide, options, least):
    s = mixture_sampler(**options)
    plain, _ = s(3000, generator=torch.Generator().manual_seed(1), guide="none")
    x, labels = s(3000, generator=torch.Generator().manual_seed(1), guide=guide)
    assert labels is None and x.shape == (3000, 2) and torch.isfinite(x).all()
    assert near_mode(plain) < 0.1 < least < near_mode(x)
    assert x[:, 0].gt(0).float().mean().item() == pytest.approx(0.5, abs=0.1)  # both modes, not one
    cost = s.last_cost.summary()
    assert cost["guide"] == guide and cost["kept"] == 3000 and cost["g_per_sample"] > 1 and cost["d_per_sample"] >= 1


def test_drs_percentile_trades_kept_samples_for_precision():
    lo, hi = (mixture_sampler(drs_percentile=p) for p in (50, 99))
    x_lo, _ = lo(2000, generator=torch.Generator().manual_seed(2), guide="drs")
    x_hi, _ = hi(2000, generator=torch.Generator().manual_seed(2), guide="drs")
    assert near_mode(x_hi) > near_mode(x_lo) + 0.1
    assert hi.last_cost.extra["acceptance"] < lo.last_cost.extra["acceptance"]


def test_a_packed_d_scores_each_sample_alone():
    """With packing, D sees a sample beside pack - 1 context samples; the score must be the sample's own."""
    x = torch.randn(50, 2)
    flat, packed = mixture_sampler(), mixture_sampler(pack=4)
    assert torch.allclose(packed._critic.raw(x, None), flat._critic.raw(x, None), atol=1e-5)


def test_conditional_guides_keep_each_sample_s_label():
    s = mixture_sampler(c_dim=2, drs_percentile=95)
    labels = torch.arange(2).repeat(300)
    for guide in ("drs", "mh", "ddls"):
        x, y = s(600, labels=labels, generator=torch.Generator().manual_seed(3), guide=guide)
        assert torch.equal(y, labels)
        own = ((x - MODES[labels]) ** 2).sum(1).sqrt() < 3 * SIG      # near the mode of its own class
        assert own.float().mean().item() > 0.6, guide


def test_options_are_checked_with_the_field_named():
    for name, bad in [("drs_percentile", 100), ("mh_steps", 0), ("ddls_step_size", 0.0),
                      ("drs_percentile", float("nan"))]:
        with pytest.raises(ConfigError, match=name):
            GuideOptions(**{name: bad})


def test_drs_that_keeps_almost_nothing_stops_with_advice():
    s = mixture_sampler(drs_percentile=99.99, max_proposals=2)
    with pytest.raises(Exception, match="lower drs_percentile"):
        s(500, generator=torch.Generator().manual_seed(4), guide="drs")


# ---------------------------------------------------------------------------------------------------------------
# on a trained run: the CLI, the sampler, eval


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from gankit.cli import main

    out = tmp_path_factory.mktemp("guided")
    assert main(["train", *TINY, "--steps", "30", "--ema_decay", "0.9", "--out", str(out), "--name", "t"]) == 0
    return out / "t"


def test_a_run_s_sampler_holds_d_and_an_export_does_not(run, tmp_path, cli):
    s = load_sampler(run)
    assert s.guides == ["drs", "mh", "ddls"] and s.D is not None
    assert cli("export", run, "--out", tmp_path / "exp")[0] == 0
    exported = load_sampler(tmp_path / "exp")
    assert exported.guides == []
    with pytest.raises(ConfigError, match="guide: drs needs the run's discriminator"):
        exported(4, guide="drs")
    with pytest.raises(ConfigError, match="weights"):
        load_sampler(tmp_path / "exp", weights="raw")


def test_weights_raw_samples_g_as_trained(run):
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    ema, raw = load_sampler(run), load_sampler(run, weights="raw")
    assert ema.meta["ema"] and not raw.meta["ema"]
    assert (ema.decode(z) - raw.decode(z)).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="weights: 'best' is not one of ema, raw"):
        load_sampler(run, weights="best")


@pytest.mark.parametrize("guide", ["drs", "mh", "ddls"])
def test_sample_cli_guides_and_says_the_cost(run, tmp_path, cli, guide):
    code, out, err = cli("sample", run, "--n", 16, "--out", tmp_path / "x.npz", "--guide", guide)
    assert code == 0, err
    assert f"sampled with {guide}:" in out and "forward passes per kept sample" in out
    import numpy as np

    assert np.load(tmp_path / "x.npz")["images"].shape == (16, 16, 16, 1)
    assert "calibration 1000 training images" in out


def test_eval_with_a_guide_writes_its_own_record_with_the_cost(run, cli):
    code, out, err = cli("eval", run, "--n", 64, "--metrics", "fid", "--guide", "drs", "--drs-percentile", 50)
    assert code == 0, err
    record = json.loads((run / "eval" / "step-0000030-drs.json").read_text())
    assert record["guide"] == "drs" and record["guide_cost"]["kept"] == 64 and record["guide_cost"]["d_per_sample"] > 1
    assert "sampled with drs" in out
    code, out, err = cli("eval", run, "--n", 64, "--metrics", "fid")
    plain = json.loads((run / "eval" / "step-0000030.json").read_text())
    assert plain["guide"] == "none" and "guide_cost" not in plain
    assert plain["results"]["fid"] != record["results"]["fid"]


def test_a_config_guide_needs_a_d_that_scores_single_samples():
    from gankit import config

    assert config.load(None, {"guide": "ddls"}).guide == "ddls"
    for bad in ({"guide": "drs", "d_norm": "virtual_batch"},
                {"guide": "mh", "task": "sr", "model": "srresnet", "img_size": 16, "holdout": 10}):
        with pytest.raises(ConfigError, match="guide: D-guided sampling needs a run of task gan"):
            config.load(None, bad)
