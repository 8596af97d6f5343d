"""The divergence guard (rollback with lower learning rates) and the D-collapse alarm (gankit.guard)."""

import json
import random

import pytest
import torch

from conftest import TINY
from gankit import data as datasets
from gankit.guard import CollapseAlarm

pytestmark = pytest.mark.usefixtures("one_thread")


def _poison(monkeypatch, steps: set[int]):
    """NaN in the first image of the real batch drawn at each training step in `steps` (1-based, counted over the
    process: a replayed step after a rollback counts again, so the poison is met once)."""
    orig = datasets.Dataset.batch
    calls = {"n": 0}

    def batch(self, idx=None):
        x = orig(self, idx)
        if idx is not None and len(idx) == 16:   # a training batch (TINY's batch_size), not VBN's reference
            calls["n"] += 1
            if calls["n"] in steps:
                x = x.clone()
                x[0] = float("nan")
        return x

    monkeypatch.setattr(datasets.Dataset, "batch", batch)
    return calls


def _finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for part in ("G", "D", "G_ema") for t in (state.get(part) or {}).values()
               if t.is_floating_point())


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_nan_at_a_random_step_rolls_back_and_finishes_finite(tmp_path, cli, monkeypatch, caplog):
    k = random.Random().randrange(2, 29)   # a different step each run; printed on failure
    _poison(monkeypatch, {k})
    code, _, err = cli("train", *TINY, "--steps", 30, "--ema_decay", "0.9", "--out", tmp_path, "--name", "r")
    assert code == 0, f"NaN at step {k}: {err}"
    assert "rolled back to step" in caplog.text, k
    state = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 30 and state["rollbacks"] == 1 and state["lr_factor"] == 0.5, k
    assert _finite(state), f"non-finite weights after a NaN at step {k}"
    events = [r for r in _rows(tmp_path / "r") if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == (k - 1) // 5 * 5, k   # back to the last clean record


def test_poisoned_batch_norm_statistics_never_reach_a_checkpoint(tmp_path, cli, monkeypatch):
    # NaN in D's input: the update is skipped, but D's batch-norm running mean has already taken the NaN
    _poison(monkeypatch, {5})
    code, _, err = cli("train", *TINY, "--steps", 5, "--ckpt_every", 5, "--out", tmp_path, "--name", "r")
    assert code == 0, err
    state = torch.load(tmp_path / "r" / "checkpoints" / "step-0000005.pt", weights_only=True)
    assert _finite(state) and state["rollbacks"] == 1


def test_lasting_divergence_stops_with_one_line_and_leaves_no_checkpoint(tmp_path, cli, caplog):
    # Adam's steps are about lr in size: at 1e30 the very first update overflows, and so does every retry
    code, out, err = cli("train", *TINY, "--steps", 1, "--g_lr", 1e30, "--d_lr", 1e30, "--max_rollbacks", 2,
                         "--out", tmp_path, "--name", "r")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("gankit: error: training diverged")
    assert "after 2 rollback(s)" in err and "no checkpoint was written" in err
    assert caplog.text.count("rolled back to step 0") == 2
    assert not (tmp_path / "r").exists()        # no folder, so no broken checkpoint that `sample` could read
    code, _, err = cli("sample", tmp_path / "r", "--out", tmp_path / "s.npz")
    assert code == 2 and not (tmp_path / "s.npz").exists()


def test_a_resumed_run_agrees_with_one_that_rolled_back_uninterrupted(tmp_path, cli, monkeypatch):
    calls = _poison(monkeypatch, {13})
    flags = [*TINY, "--ckpt_every", 10, "--out", tmp_path]
    assert cli("train", *flags, "--steps", 20, "--name", "full")[0] == 0
    calls["n"] = 0
    assert cli("train", *flags, "--steps", 10, "--name", "half")[0] == 0
    calls["n"] = 10   # the resumed process draws the batches of steps 11, 12, 13, ...: the poison meets step 13 again
    assert cli("train", "--resume", tmp_path / "half", "--steps", 20, "--no-progress")[0] == 0
    a, b = (torch.load(tmp_path / n / "checkpoints" / "latest.pt", weights_only=True) for n in ("full", "half"))
    assert a["rollbacks"] == b["rollbacks"] == 1 and a["lr_factor"] == b["lr_factor"] == 0.5
    for part in ("G", "D"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs"


def test_learning_rates_may_change_on_resume_and_reset_the_factor(tmp_path, cli, monkeypatch):
    _poison(monkeypatch, {3})
    assert cli("train", *TINY, "--steps", 10, "--out", tmp_path, "--name", "r")[0] == 0
    assert torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)["lr_factor"] == 0.5
    code, _, err = cli("train", "--resume", tmp_path / "r", "--steps", 15, "--g_lr", 1e-4, "--d_lr", 5e-5,
                       "--no-progress")
    assert code == 0, err
    state = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["lr_factor"] == 1.0 and state["config"]["g_lr"] == 1e-4 and state["config"]["d_lr"] == 5e-5
    assert state["opt_d"]["param_groups"][0]["lr"] == 5e-5
    assert "g_lr: 0.0001" in (tmp_path / "r" / "config.yaml").read_text()


def test_collapse_alarm_fires_once_per_sustained_episode():
    alarm = CollapseAlarm(steps=100, loss="ns")
    won = {"D(x)": 0.99, "D(G(z))": 0.01}
    fired = [alarm.update(s, won, 50) for s in (50, 100)]
    assert fired == [None, fired[1]] and "D-collapse at step 100" in fired[1] and "label_smooth" in fired[1]
    assert alarm.active and alarm.update(150, won, 50) is None          # once per episode
    assert alarm.update(200, {"D(x)": 0.8, "D(G(z))": 0.3}, 50) is None and not alarm.active
    assert alarm.update(250, won, 50) is None and alarm.update(300, won, 50) is not None   # a new episode
    assert CollapseAlarm(100, "wgan-gp").update(500, won, 500) is None    # a critic's scores are not probabilities
    assert CollapseAlarm(0, "ns").update(500, won, 500) is None


def test_collapse_alarm_in_the_log_and_the_records(tmp_path, cli, caplog):
    # G barely learns (g_lr 1e-8) while D learns fast: D wins within a few dozen steps
    code, _, err = cli("train", *TINY, "--steps", 60, "--g_lr", 1e-8, "--d_lr", 5e-3, "--collapse_steps", 20,
                       "--out", tmp_path, "--name", "r")
    assert code == 0, err
    assert "D-collapse at step" in caplog.text and "instance noise" in caplog.text
    assert any(r.get("event") == "d_collapse" for r in _rows(tmp_path / "r"))


def test_a_checkpoint_with_a_non_finite_weight_is_never_written(tmp_path):
    from gankit import checkpoint
    from gankit.errors import UserError

    state = {"G": {"w": torch.tensor([1.0, float("nan")])}, "D": {}, "config": {}, "step": 1}
    with pytest.raises(UserError, match="G.w holds NaN"):
        checkpoint.save_step(state, tmp_path, 1)
    assert not list(tmp_path.iterdir())
