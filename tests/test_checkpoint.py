import torch

from conftest import TINY
from gankit import checkpoint
from gankit.errors import UserError

import pytest


def _weights(run):
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)


def test_resume_equals_uninterrupted_run(tmp_path, cli):
    # Tricks that draw random numbers are on, so every RNG state has to come back.
    extra = ["--ema_decay", "0.9", "--diffaug", "color,translation,cutout", "--inst_noise", "0.1",
             "--inst_noise_steps", "20", "--r1_gamma", "1", "--out", tmp_path]
    assert cli("train", *TINY, *extra, "--steps", 20, "--name", "full")[0] == 0
    assert cli("train", *TINY, *extra, "--steps", 10, "--name", "half")[0] == 0
    code, _, err = cli("train", "--resume", tmp_path / "half", "--steps", 20, "--no-progress")
    assert code == 0, err
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert a["step"] == b["step"] == 20 and a["nimg"] == b["nimg"] == 320
    for part in ("G", "D", "G_ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs after resume"
    for k, v in a["opt_d"]["state"][0].items():
        assert torch.equal(v, b["opt_d"]["state"][0][k])


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path
    checkpoint.save_step({"G": {"w": torch.ones(3)}, "config": {}, "step": 1}, folder, 1)

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_step({"G": {"w": torch.zeros(3)}, "config": {}, "step": 2}, folder, 2)
    monkeypatch.undo()
    state = checkpoint.load(folder / checkpoint.LATEST)
    assert state["step"] == 1 and torch.equal(state["G"]["w"], torch.ones(3))
    assert not list(folder.glob(".*.tmp*")) and not (folder / "step-0000002.pt").exists()


def test_unreadable_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(UserError, match="cannot read"):
        checkpoint.load(bad)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a gankit checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def test_rng_state_roundtrip():
    import random

    import numpy as np

    state = checkpoint.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_a_command_for_another_task_refuses_the_run_by_name(tiny_run, cli):
    for command in ("classify", "upscale"):
        code, _, err = cli(command, tiny_run, "--images", "heldout", "--out", tiny_run.parent / f"{command}-out")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "run of task gan" in err and f"needs a run of task {'ssl' if command == 'classify' else 'sr'}" in err
        assert not (tiny_run.parent / f"{command}-out").exists()
