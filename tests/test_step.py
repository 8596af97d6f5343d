"""The training step (step.py): the refactor changed nothing by accident, the guard keeps non-finite values out of
the weights, and the fast path's switches do what they say."""
import copy

import pytest
import torch

from gankit import config, data, models
from gankit.step import Step, Tally, autocast_dtype, make_optimizers

from legacy_step import legacy_step

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = dict(data="digits", img_size=16, z_dim=8, g_width=8, d_width=8, batch_size=16, steps=6,
            precision="fp32", channels_last=False, reuse_fake=False)
LEGACY_CASES = {
    "base": {},
    "tricks": dict(ema_decay=0.9, diffaug="color,translation,cutout", inst_noise=0.1, r1_gamma=1.0,
                   lr_decay_start=0.5, label_smooth=0.9),
    "conditional": dict(cond="projection", c_dim=10, d_steps=2, g_steps=2),
    "wgan-gp": dict(loss="wgan-gp", d_norm="layer"),
    "feature matching, mixed": dict(feature_matching=True, d_batching="mixed", mbstd=True),
    "mlp packed": dict(model="mlp", pack=2, loss="hinge", d_norm="spectral", g_norm="none"),
}


def _setup(cfg, fused):
    ds = data.load(cfg.data, img_size=cfg.img_size)
    torch.manual_seed(0)
    G, D = models.build(cfg, ds.shape)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay else None
    opt_g, opt_d = make_optimizers(cfg, G, D, fused=fused)
    return ds, G, D, G_ema, opt_g, opt_d


def _batches(ds, cfg):
    gen = torch.Generator().manual_seed(1)
    idx = [torch.randint(len(ds), (cfg.batch_size,), generator=gen) for _ in range(cfg.steps * cfg.d_steps)]
    it = iter(idx)

    def real_batch():
        i = next(it)
        return ds.batch(i), (ds.y[i] if cfg.c_dim else None)
    return real_batch


@pytest.mark.parametrize("case", LEGACY_CASES)
def test_step_equals_the_loop_it_replaced(case):
    cfg = config.load(None, {**BASE, **LEGACY_CASES[case]})
    ds, *old = _setup(cfg, fused=False)
    _, *new = _setup(cfg, fused=False)
    cpu = torch.device("cpu")
    torch.manual_seed(7)
    batches = _batches(ds, cfg)
    for k in range(cfg.steps):
        legacy_step(cfg, *old, batches, k, cpu)
    torch.manual_seed(7)
    batches = _batches(ds, cfg)
    step = Step(cfg, *new, cpu)
    for k in range(cfg.steps):
        step(batches, k)
    for a, b in zip(old[:3], new[:3]):
        if a is None:
            continue
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(ta, tb), f"{name} differs after {cfg.steps} steps"
    assert step.tally.nonfinite_updates() == 0 and step.tally.count == cfg.steps


def _poison_after(module, k):
    """A forward hook that turns the output non-finite from call k on (counting calls)."""
    calls = [0]

    def hook(_, __, out):
        calls[0] += 1
        return out * float("nan") if calls[0] > k else out
    return module.register_forward_hook(hook)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_non_finite_updates_are_skipped_and_counted(fused):
    cfg = config.load(None, {**BASE, "steps": 4})
    ds, G, D, G_ema, opt_g, opt_d = _setup(cfg, fused=fused)
    step = Step(cfg, G, D, G_ema, opt_g, opt_d, torch.device("cpu"))
    batches = _batches(ds, cfg)
    step(batches, 0)
    assert step.tally.nonfinite_updates() == 0
    before = {k: v.clone() for k, v in {**G.state_dict(), **{f"D.{n}": t for n, t in D.state_dict().items()}}.items()
              if "running" not in k and "num_batches" not in k}
    handle = _poison_after(D, 0)  # every D output from now on is NaN: both updates of the next step are bad
    step(batches, 1)
    handle.remove()
    after = {**G.state_dict(), **{f"D.{n}": t for n, t in D.state_dict().items()}}
    assert step.tally.nonfinite_updates() == 2
    for k, v in before.items():
        assert torch.equal(v, after[k]) and torch.isfinite(after[k]).all(), f"{k} changed by a non-finite update"
    assert all(opt.state_dict()["state"][0]["step"].item() == 1 for opt in (opt_g, opt_d))  # not counted as steps


def test_tally_reads_means_once_and_restarts():
    t = Tally(torch.device("cpu"))
    t.add(*[torch.tensor(1.0)] * 5)
    t.add(*[torch.tensor(3.0)] * 5)
    assert t.read() == dict.fromkeys(Tally.KEYS, 2.0)
    t.add(*[torch.tensor(5.0)] * 5)
    assert t.read()["loss_d"] == 5.0


def test_reuse_fake_saves_one_generator_forward():
    calls = {}
    for reuse in (False, True):
        cfg = config.load(None, {**BASE, "reuse_fake": reuse, "steps": 2})
        ds, G, D, G_ema, opt_g, opt_d = _setup(cfg, fused=True)
        n = [0]
        G.register_forward_hook(lambda *_: n.__setitem__(0, n[0] + 1))
        step = Step(cfg, G, D, G_ema, opt_g, opt_d, torch.device("cpu"))
        batches = _batches(ds, cfg)
        step(batches, 0), step(batches, 1)
        calls[reuse] = n[0]
        assert all(torch.isfinite(p).all() for p in G.parameters())
    assert calls == {False: 4, True: 2}


def test_precision_auto_follows_the_hardware(monkeypatch):
    from gankit import precision
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert autocast_dtype("auto", cpu) is None
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert autocast_dtype("auto", cpu) == torch.bfloat16


def test_bf16_and_channels_last_train_to_finite_weights_near_fp32():
    out = {}
    for name, extra in {"fp32": {}, "fast": dict(precision="bf16", channels_last=True, reuse_fake=True)}.items():
        cfg = config.load(None, {**BASE, **extra, "steps": 3})
        ds, G, D, G_ema, opt_g, opt_d = _setup(cfg, fused=True)
        if cfg.channels_last:
            G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        step = Step(cfg, G, D, G_ema, opt_g, opt_d, torch.device("cpu"))
        batches = _batches(ds, cfg)
        for k in range(cfg.steps):
            step(batches, k)
        out[name] = torch.cat([p.detach().flatten() for p in G.parameters()])
    assert torch.isfinite(out["fast"]).all()
    moved = (out["fp32"] - out["fast"]).abs().max().item()
    assert 0 < moved < 0.05  # other arithmetic, the same training: a few steps of lr 2e-4 cannot go far


def test_bench_runs_beside_the_reference(cli, tmp_path):
    out = tmp_path / "b.json"
    code, text, err = cli("bench", "--data", "fake", "--n_points", 64, "--img_size", 16, "--z_dim", 8, "--g_width", 8,
                          "--d_width", 8, "--batch_size", 16, "--precision", "bf16", "--reference", "--rounds", 2,
                          "--timed-steps", 1, "--warmup", 1, "--json", out)
    assert code == 0, err
    assert "| gankit |" in text and "| reference fp32 |" in text and "| reference bf16 |" in text
    import json
    record = json.loads(out.read_text())
    assert set(record["results"]) == {"gankit", "reference fp32", "reference bf16"}
    g = record["results"]["gankit"]
    assert len(g["sec_per_step"]) == 2 and g["img_per_sec"] > 0 and g["flops"] > 0
    # the reference computes D's weight gradients in G's update, gankit does not: more FLOPs per step
    assert record["results"]["reference fp32"]["flops"] > g["flops"]
    code, _, err = cli("bench", "--model", "mlp", "--data", "ring", "--reference")
    assert code == 2 and "--reference" in err
    code, _, err = cli("bench", "--data", "fake", "--json", out)
    assert code == 2 and "exists" in err


def test_bench_with_lazy_r1_counts_a_step_without_it(cli):
    # the flop counter cannot follow R1's double backward: the FLOPs of a step without R1, and a note that says so
    code, text, err = cli("bench", "--data", "fake", "--n_points", 64, "--img_size", 16, "--z_dim", 8, "--g_width", 8,
                          "--d_width", 8, "--batch_size", 16, "--r1_gamma", 1, "--r1_every", 4, "--rounds", 1,
                          "--timed-steps", 4, "--warmup", 1)
    assert code == 0, err
    assert "step without R1" in text and "| gankit |" in text and "| – |" not in text


def test_compiled_step_trains(tmp_path, cli):
    from conftest import TINY
    code, _, err = cli("train", *TINY, "--model", "mlp", "--steps", 3, "--compile", "default", "--out", tmp_path,
                       "--name", "c")
    assert code == 0, err
    state = torch.load(tmp_path / "c" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["G"].values())


def test_ema_rampup_and_lazy_r1():
    from gankit.step import ema_decay
    cfg = config.load(None, {**BASE, "ema_decay": 0.999, "ema_rampup": 0.1})
    assert ema_decay(cfg, 0) == 0.0                        # G_ema starts as a copy of G
    assert ema_decay(cfg, 99) == pytest.approx(0.9)        # horizon 10 steps after 100
    assert ema_decay(cfg, 100_000) == 0.999
    assert ema_decay(config.load(None, {**BASE, "ema_decay": 0.99}), 0) == 0.99
    penalties = {}
    for every in (1, 4):
        cfg = config.load(None, {**BASE, "r1_gamma": 1.0, "r1_every": every, "steps": 4})
        ds, G, D, G_ema, opt_g, opt_d = _setup(cfg, fused=True)
        step = Step(cfg, G, D, G_ema, opt_g, opt_d, torch.device("cpu"))
        batches, seen = _batches(ds, cfg), []
        for k in range(4):
            step(batches, k)
            seen.append(step.tally.read()["penalty"])
        penalties[every] = seen
    assert all(p > 0 for p in penalties[1])
    assert penalties[4][0] > 0 and penalties[4][1:] == [0.0, 0.0, 0.0]   # only every 4th step, weighted 4x
