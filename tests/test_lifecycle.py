"""A run folder's life: made only when a run really starts, locked, resumed only after every check, checksummed
checkpoints, and the output policy (existing files refused unless --force)."""

import fcntl
import os
import shutil

import pytest
import torch

from conftest import TINY
from gankit import checkpoint, step

pytestmark = pytest.mark.usefixtures("one_thread")


def _latest(run):
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)


def _one_line(code, err, needle):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err


def _fail_at(monkeypatch, k: int, exc: BaseException):
    orig = step.Step.__call__

    def call(self, real_batch, i):
        if i + 1 == k:
            raise exc
        return orig(self, real_batch, i)

    monkeypatch.setattr(step.Step, "__call__", call)


@pytest.mark.parametrize("exc,needle", [
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), "out of memory"),
    (MemoryError(), "out of memory"),
])
def test_a_failure_before_the_first_checkpoint_leaves_no_folder(tmp_path, cli, monkeypatch, exc, needle):
    _fail_at(monkeypatch, 3, exc)
    code, _, err = cli("train", *TINY, "--steps", 10, "--out", tmp_path, "--name", "r")
    _one_line(code, err, needle)
    assert not (tmp_path / "r").exists()
    monkeypatch.undo()
    assert cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "r")[0] == 0   # the name is free


def test_ctrl_c_saves_the_last_clean_state_and_resume_is_exact(tmp_path, cli, monkeypatch):
    assert cli("train", *TINY, "--steps", 16, "--out", tmp_path, "--name", "full")[0] == 0
    _fail_at(monkeypatch, 8, KeyboardInterrupt())
    assert cli("train", *TINY, "--steps", 16, "--out", tmp_path, "--name", "cut")[0] == 130
    assert checkpoint.steps_available(tmp_path / "cut" / "checkpoints") == [5]   # the clean record before step 8
    monkeypatch.undo()
    _fail_at(monkeypatch, 13, KeyboardInterrupt())                                   # again, in the resumed run
    assert cli("train", "--resume", tmp_path / "cut", "--no-progress")[0] == 130
    assert checkpoint.steps_available(tmp_path / "cut" / "checkpoints") == [5, 10]
    monkeypatch.undo()
    code, _, err = cli("train", "--resume", tmp_path / "cut", "--no-progress")
    assert code == 0, err
    a, b = _latest(tmp_path / "full"), _latest(tmp_path / "cut")
    for part in ("G", "D"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_ctrl_c_before_any_clean_record_leaves_no_folder(tmp_path, cli, monkeypatch):
    _fail_at(monkeypatch, 3, KeyboardInterrupt())
    assert cli("train", *TINY, "--steps", 12, "--out", tmp_path, "--name", "r")[0] == 130
    assert not (tmp_path / "r").exists()


def _failed_start(tmp_path, cli, name="r"):
    """What kill -9 before the first checkpoint leaves: config.yaml, records and pictures, no checkpoint."""
    assert cli("train", *TINY, "--steps", 10, "--out", tmp_path, "--name", name)[0] == 0
    run = tmp_path / name
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".step-0000010.pt.tmp").write_bytes(b"half")
    return run


def test_a_failed_start_is_resumed_from_step_0(tmp_path, cli):
    run = _failed_start(tmp_path, cli)
    code, _, err = cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert _latest(run)["step"] == 10
    assert [r for r in (run / "metrics.jsonl").read_text().splitlines() if '"step": 5,' in r].__len__() == 1


def test_a_new_run_takes_over_a_failed_start_but_not_a_users_folder(tmp_path, cli):
    _failed_start(tmp_path, cli, "r")
    assert cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "r")[0] == 0
    assert _latest(tmp_path / "r")["step"] == 2
    _failed_start(tmp_path, cli, "dcgan-digits")
    assert cli("train", *TINY, "--steps", 2, "--out", tmp_path)[0] == 0      # a default name, taken over
    assert not (tmp_path / "dcgan-digits-2").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "mine", "--force")
    _one_line(code, err, "files gankit did not write (notes.txt)")
    assert (mine / "notes.txt").read_text() == "keep me"


def test_force_replaces_a_run_folder(tiny_run, cli):
    code, _, err = cli("train", *TINY, "--steps", 3, "--out", tiny_run.parent, "--name", "tiny")
    _one_line(code, err, "--force")
    assert cli("train", *TINY, "--steps", 3, "--out", tiny_run.parent, "--name", "tiny", "--force")[0] == 0
    assert _latest(tiny_run)["step"] == 3 and not (tiny_run / "checkpoints" / "step-0000020.pt").exists()


def test_two_processes_on_one_run_are_refused(tiny_run, cli):
    fd = os.open(tiny_run, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)    # as a training process holds it
    try:
        before = (tiny_run / "config.yaml").read_bytes()
        code, _, err = cli("train", "--resume", tiny_run, "--steps", 30, "--no-progress")
        _one_line(code, err, "in use by another gankit process")
        assert (tiny_run / "config.yaml").read_bytes() == before
    finally:
        os.close(fd)


@pytest.mark.parametrize("damage,flags,needle", [
    ("none", ["--steps", 10], "already at step 20"),
    ("truncate", ["--steps", 30], "latest.pt"),
    ("width", ["--steps", 30], "differs from its checkpoint in g_width"),
    ("arch", ["--steps", 30], "does not fit the models"),
])
def test_resume_checks_everything_before_it_writes(tiny_run, cli, damage, flags, needle):
    ckpts = tiny_run / "checkpoints"
    if damage == "truncate":
        data = (ckpts / "latest.pt").read_bytes()
        (ckpts / "latest.pt").unlink()                       # a hard link to step-20: break only latest.pt
        (ckpts / "latest.pt").write_bytes(data[: len(data) // 2])
    elif damage == "width":
        text = (tiny_run / "config.yaml").read_text()
        (tiny_run / "config.yaml").write_text(text.replace("g_width: 8", "g_width: 16"))
    elif damage == "arch":   # a checkpoint of another architecture under the run's name
        state = checkpoint.load(ckpts / "latest.pt")
        state["G"] = {k + "x": v for k, v in state["G"].items()}
        checkpoint.save_step(state, ckpts, 20)
    before = {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()}
    code, _, err = cli("train", "--resume", tiny_run, *flags, "--no-progress")
    _one_line(code, err, needle)
    assert {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()} == before


def test_a_damaged_checkpoint_names_itself_and_the_last_good_one(tmp_path, cli):
    assert cli("train", *TINY, "--steps", 20, "--ckpt_every", 10, "--out", tmp_path, "--name", "r")[0] == 0
    ckpts = tmp_path / "r" / "checkpoints"
    state = torch.load(ckpts / "step-0000020.pt", weights_only=True)
    state["G"]["net.0.weight"][0, 0, 0, 0] += 1e-3          # one weight altered, the file otherwise valid
    torch.save(state, ckpts / "step-0000020.pt")             # latest.pt is the same file (a hard link)
    code, _, err = cli("sample", tmp_path / "r", "--out", tmp_path / "s.npz")
    _one_line(code, err, "do not match its checksum")
    assert "latest.pt" in err and "step-0000010.pt" in err
    (ckpts / "step-0000020.pt").write_bytes(b"\x50\x4b" + os.urandom(100))
    code, _, err = cli("sample", ckpts / "step-0000020.pt", "--out", tmp_path / "s.npz")
    _one_line(code, err, "step-0000010.pt")


def test_every_command_refuses_existing_outputs_unless_forced(tiny_run, tmp_path, cli):
    mine = b"the user's own bytes"
    tmp_path = tmp_path / "outputs"
    cases = [("sample", tiny_run, "--out", tmp_path / "s.npz"), ("sample", tiny_run, "--out", tmp_path / "g.png"),
             ("sample", tiny_run, "--n", 2, "--out", tmp_path / "dir"),
             ("sample", tiny_run, "--sheet", "--out", tmp_path / "sheet.png"),
             ("interpolate", tiny_run, "--paths", 2, "--steps", 3, "--out", tmp_path / "interp"),
             ("arithmetic", tiny_run, "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out", tmp_path / "ar.png"),
             ("export", tiny_run, "--out", tmp_path / "exp"), ("report", tiny_run, "--out", tmp_path / "r.html")]
    for args in cases:
        assert cli(*args)[0] == 0, args
        written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
        for p in written:
            p.write_bytes(mine)
        code, _, err = cli(*args)
        _one_line(code, err, "pass --force")
        assert all(p.read_bytes() == mine for p in written), args
        assert cli(*args, "--force")[0] == 0, args
        assert written and all(p.read_bytes() != mine for p in written), args
        for p in written:
            p.unlink()
