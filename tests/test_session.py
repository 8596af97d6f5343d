"""One run lifecycle for every task (session.py): for each task of the task table, a run killed with SIGKILL (before
its first checkpoint, and after one), stopped by SIGTERM, or hit by a non-finite update goes on to the same end as a
run that never was; a damaged checkpoint is refused by name, and so is a resume on training data that changed. A
task added to the table without a tiny config here fails `test_every_task_is_covered`."""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from conftest import TINY, assert_same_end
from gankit import checkpoint, registry, step
from gankit.tasks import table as tasks
from gankit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
SRC = str(Path(gankit.__file__).resolve().parents[1])
STEPS = 20

def _write_idx(folder: Path, x, y) -> None:
    """MNIST's training IDX files: x (n, 28, 28) uint8, y (n,) labels."""
    folder.mkdir(exist_ok=True)
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, *x.shape) + x.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, len(y)) + y.astype("uint8").tobytes())


# task predict moves MNIST digits: 300 random 28x28 "digits" in IDX files, made once for this file's processes
_DIGITS = tempfile.mkdtemp(prefix="gankit-session-digits-")
_write_idx(Path(_DIGITS), np.random.RandomState(1).randint(0, 256, (300, 28, 28), dtype=np.uint8),
           np.arange(300) % 10)

# A tiny run of each task on the 8x8 digits: checkpoints every 10 steps, a record every 5, an evaluation every 10.
COMMON = ["--log_every", "5", "--sample_every", "10", "--ckpt_every", "10", "--eval_every", "10", "--no-progress",
          "--steps", str(STEPS), "--precision", "fp32"]
ARGS = {
    "gan": [*TINY, "--ema_decay", "0.9"],
    "ssl": ["--task", "ssl", "--model", "mlp", "--data", "digits", "--img_size", "8", "--holdout", "100",
            "--labels_per_class", "5", "--z_dim", "8", "--g_width", "16", "--g_layers", "1", "--d_width", "32",
            "--d_layers", "2", "--batch_size", "32", "--ema_decay", "0.9", "--ssl_consistency", "1"],
    "sr": ["--task", "sr", "--model", "srresnet", "--data", "digits", "--img_size", "16", "--sr_scale", "4",
           "--holdout", "100", "--g_width", "8", "--g_layers", "1", "--d_width", "4", "--batch_size", "16",
           "--adv_weight", "0.01", "--ema_decay", "0.9"],
    "predict": ["--task", "predict", "--model", "unet", "--data", "moving-mnist", "--data_dir", _DIGITS,
                "--img_size", "16", "--digits", "1",
                "--frames", "6", "--context", "2", "--horizon", "2", "--n_points", "256", "--holdout", "32",
                "--z_dim", "4", "--g_width", "8", "--d_width", "8", "--batch_size", "16", "--adv_weight", "0.1"],
}


def _train(cli, task, out, name, *extra):
    return cli("train", *ARGS[task], *COMMON, *extra, "--out", out, "--name", name)


def _same_end(a: Path, b: Path) -> None:
    assert_same_end(a, b, STEPS)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of each task, made on first use."""
    root, made = tmp_path_factory.mktemp("reference"), {}

    def get(task):
        if task not in made:
            assert main(["train", *map(str, ARGS[task]), *COMMON, "--out", str(root), "--name", task]) == 0
            made[task] = root / task
        return made[task]
    return get


def test_every_task_is_covered():
    assert set(ARGS) == set(tasks.TRAINERS) == set(registry.TASKS)


# The process kills itself with SIGKILL at a chosen moment: after its first checkpoint is on disk, or at its first
# record (before any checkpoint: a failed start). Deterministic, unlike a kill from outside at a moment in time.
KILLER = """
import os, signal, sys
from gankit import checkpoint, run
when = sys.argv.pop(1)
if when == "after-checkpoint":
    save = checkpoint.save_step
    def save_then_die(state, folder, step):
        path = save(state, folder, step)
        os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.save_step = save_then_die
else:
    write = run.Recorder.write
    def write_then_die(self, row):
        write(self, row)
        if "sec" in row:
            os.kill(os.getpid(), signal.SIGKILL)
    run.Recorder.write = write_then_die
from gankit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("when", ["before-checkpoint", "after-checkpoint"])
@pytest.mark.parametrize("task", list(ARGS))
def test_kill_9_then_resume_ends_bit_identical(task, when, tmp_path, cli, reference):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    args = ["train", *ARGS[task], *COMMON, "--out", tmp_path, "--name", "cut"]
    proc = subprocess.run([sys.executable, "-c", KILLER, when, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = tmp_path / "cut"
    saved = checkpoint.steps_available(run / "checkpoints")
    assert saved == ([10] if when == "after-checkpoint" else []), saved
    code, _, err = cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    _same_end(reference(task), run)


@pytest.mark.parametrize("task", list(ARGS))
def test_sigterm_saves_the_last_clean_state_and_resume_is_exact(task, tmp_path, cli, monkeypatch, reference):
    trainer = tasks.TRAINERS[task]
    train_step = trainer.train_step

    def terminated_in_step_18(self, k):
        if k == 17:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises in this thread, inside the step's call
        return train_step(self, k)

    monkeypatch.setattr(trainer, "train_step", terminated_in_step_18)
    code, _, err = _train(cli, task, tmp_path, "cut")
    assert code == 143 and "terminated" in err, err
    # the checkpoint of step 10, and the state after step 18, the step SIGTERM came in: no step is lost
    assert checkpoint.steps_available(tmp_path / "cut" / "checkpoints") == [10, 18]
    monkeypatch.undo()
    assert cli("train", "--resume", tmp_path / "cut", "--no-progress")[0] == 0
    _same_end(reference(task), tmp_path / "cut")


@pytest.mark.parametrize("task", list(ARGS))
def test_a_non_finite_update_rolls_back_and_the_run_ends_finite(task, tmp_path, cli, monkeypatch):
    update, calls = step.Step.update, [0]

    def poisoned(self, opt, module, loss):
        calls[0] += 1
        return update(self, opt, module, loss * float("nan") if calls[0] == 7 else loss)

    monkeypatch.setattr(step.Step, "update", poisoned)
    code, _, err = _train(cli, task, tmp_path, "r")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in rows if r.get("event") == "rollback"]
    # step 4's update of D was poisoned and skipped; the check at step 5's record rolls back to the last good state,
    # the start (the record rows name the step the run goes on from)
    assert len(events) == 1 and events[0]["step"] == 0 and events[0]["lr_factor"] == 0.5, events
    final = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    assert final["step"] == STEPS and final["rollbacks"] == 1 and final["lr_factor"] == 0.5
    assert not checkpoint.nonfinite_parts(final)


@pytest.mark.parametrize("task", list(ARGS))
def test_a_damaged_checkpoint_is_refused_by_name(task, tmp_path, cli):
    assert _train(cli, task, tmp_path, "r", "--steps", "10")[0] == 0
    latest = tmp_path / "r" / "checkpoints" / "latest.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.unlink(latest)                       # latest.pt is a hard link of step-0000010.pt: damage only this one
    latest.write_bytes(bytes(data))
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    code, _, err = cli("train", "--resume", tmp_path / "r", "--steps", "20", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "latest.pt" in err and "step-0000010.pt" in err, err
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("task", list(ARGS))
def test_a_refused_start_leaves_nothing_and_force_replaces_the_tasks_own_run(task, tmp_path, cli):
    code, _, err = _train(cli, task, tmp_path, "r", "--batch_size", "5000")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "batch_size" in err, err
    assert not (tmp_path / "r").exists()
    assert _train(cli, task, tmp_path, "r", "--steps", "10")[0] == 0
    code, _, err = _train(cli, task, tmp_path, "r", "--steps", "10", "--force")   # what the task wrote is its own
    assert code == 0, err
    assert checkpoint.steps_available(tmp_path / "r" / "checkpoints") == [10]


@pytest.mark.parametrize("task", list(ARGS))
def test_resume_refuses_training_data_that_changed(task, tmp_path, cli):
    """Every task's checkpoints keep a fingerprint of its training part (the examples it draws from, without the
    held-out ones), and a resume on data that changed since is refused before anything is written."""
    rng = np.random.RandomState(0)
    x, y, more = rng.randint(0, 256, (600, 28, 28), dtype=np.uint8), rng.randint(0, 10, 700), rng.randint(
        0, 256, (100, 28, 28), dtype=np.uint8)
    idx = tmp_path / "idx"
    _write_idx(idx, x, y[:600])
    data = "moving-mnist" if task == "predict" else "mnist"  # predict: its sequences are made of these digits
    assert _train(cli, task, tmp_path, "r", "--data", data, "--data_dir", idx, "--steps", "10")[0] == 0
    run, held = tmp_path / "r", 0 if task == "gan" else 100
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    changes = [((np.concatenate([x, more]), y), f"{600 - held} training examples then, {700 - held} now"),
               ((255 - x, y[:600]), f"still {600 - held} training examples, but their contents differ")]
    if task == "predict":  # as many sequences either way (n_points), made of other digits
        changes = [(c, "training examples, but their contents differ") for c, _ in changes]
    for (xs, ys), needle in changes:
        _write_idx(idx, xs, ys)
        code, _, err = cli("train", "--resume", run, "--steps", str(STEPS), "--no-progress")
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    _write_idx(idx, x, y[:600])                                       # the data put back: the run goes on
    code, _, err = cli("train", "--resume", run, "--steps", str(STEPS), "--no-progress")
    assert code == 0, err
    assert torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["step"] == STEPS
