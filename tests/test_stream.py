"""Streaming (stream: on): batches decoded in DataLoader workers from a folder or from tar shards are the batches
the same set held in memory gives; each torchrun process reads its own part; a resumed run equals an uninterrupted
one; metrics use a fixed subset. While workers decode: kill -9 of the trainer frees its run folder at once (the
workers hold no copy of the lock), and SIGTERM, to the trainer or to all of its processes, saves its last clean
state; either way the resumed run ends bit-identical to an uninterrupted one."""

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
import gankit.run
from conftest import TINY, assert_same_end
from gankit import checkpoint, data, distributed
from gankit.cli import main
from gankit.data.shards import write_shards
from gankit.data.stream import Draw, ImageSource, StreamedDataset

pytestmark = pytest.mark.usefixtures("one_thread")
N = 70


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """N 16x16 images, two classes; image i stores its number in the red (i % 256) and green (i // 256) channels,
    so a batch says which images were read."""
    root = tmp_path_factory.mktemp("stream") / "imgs"
    for i in range(N):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        im = np.zeros((16, 16, 3), np.uint8)
        im[..., 0], im[..., 1], im[:8, :4, 2] = i % 256, i // 256, 255      # a blue corner shows mirroring
        Image.fromarray(im).save(root / f"c{i % 2}" / f"{i:03d}.png")
    return root


def _number(x: torch.Tensor) -> list[int]:
    """Image numbers from float batches (B, 3, 16, 16) in [-1, 1]."""
    u = ((x + 1) * 127.5).round().long()
    return (u[:, 0, 8, 8] + 256 * u[:, 1, 8, 8]).tolist()


def test_streamed_batches_are_the_in_memory_batches(folder):
    held = data.load(f"folder:{folder}", img_size=16, stream="off")
    streamed = data.load(f"folder:{folder}", img_size=16, stream="on", workers=1)
    assert isinstance(streamed, StreamedDataset) and len(streamed) == len(held) == N
    ctx = distributed.Context()
    a = Draw(held, 8, seed=1, ctx=ctx, device="cpu", xflip=True)
    b = Draw(streamed, 8, seed=1, ctx=ctx, device="cpu", xflip=True)
    per_epoch = 2 * N // 8
    for k in list(range(per_epoch + 2)) + [5 * per_epoch + 1]:       # across an epoch boundary, and a jump ahead
        (xa, ya), (xb, yb) = a(k), b(k)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        flipped = xa[:, 2, 0, 0] < 0                                  # blue corner moved from the left to the right
        assert torch.equal(flipped, xa[:, 2, 0, 15] > 0)
    assert torch.equal(streamed.batch(torch.arange(4)), held.batch(torch.arange(4)))


def test_two_processes_read_disjoint_parts(folder):
    streamed = data.load(f"folder:{folder}", img_size=16, stream="on", workers=1)
    per_epoch = N // (8 * 2)                                          # batches per epoch per process
    read = []
    for rank in (0, 1):
        draw = Draw(streamed, 8, seed=0, ctx=distributed.Context(rank, 2, rank), device="cpu")
        read.append([n for k in range(per_epoch) for n in _number(draw(k)[0])])
    assert len(set(read[0])) == len(read[0]) == len(read[1]) == per_epoch * 8
    assert set(read[0]).isdisjoint(read[1])                           # disjoint, and all from the data
    assert set(read[0]) | set(read[1]) <= set(range(N))


def test_shards_hold_the_folder(folder, tmp_path, cli):
    code, out, err = cli("shards", folder, "--out", tmp_path / "sh", "--per-shard", 30)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "sh").iterdir()) == ["classes.txt", "shard-000000.tar",
                                                                   "shard-000001.tar", "shard-000002.tar"]
    held = data.load(f"folder:{folder}", img_size=16)
    for spec in (tmp_path / "sh", str(tmp_path / "sh" / "shard-{000000..000002}.tar")):
        for stream in ("off", "on"):
            ds = data.load(f"shards:{spec}", img_size=16, stream=stream, workers=1)
            assert ds.class_names == ["c0", "c1"] and torch.equal(ds.y.cpu(), held.y)
            assert torch.equal(ds.batch(torch.arange(N)), held.batch(torch.arange(N)))
    code, _, err = cli("shards", folder, "--out", tmp_path / "sh")
    assert code == 2 and "shard-000000.tar exists" in err


def test_streamed_training_equals_in_memory_and_resumes_exactly(folder, tmp_path, cli):
    flags = [*TINY, "--data", f"folder:{folder}", "--data_workers", 1, "--xflip", "--cond", "concat",
             "--ckpt_every", 4, "--out", tmp_path]
    for name, extra in (("held", ["--stream", "off", "--steps", 12]), ("streamed", ["--stream", "on", "--steps", 12]),
                        ("half", ["--stream", "on", "--steps", 5])):
        code, _, err = cli("train", *flags, *extra, "--name", name)
        assert code == 0, err
    code, _, err = cli("train", "--resume", tmp_path / "half", "--steps", 12, "--no-progress")
    assert code == 0, err
    ckpts = {n: torch.load(tmp_path / n / "checkpoints" / "latest.pt", weights_only=True)
             for n in ("held", "streamed", "half")}
    assert ckpts["held"]["batches"] == ckpts["half"]["batches"] == 12
    for other in ("streamed", "half"):
        for part in ("G", "D"):
            for key, value in ckpts["held"][part].items():
                assert torch.equal(value, ckpts[other][part][key]), f"{other}: {part}.{key} differs"


def test_memory_budget_decides_and_metrics_use_a_subset(folder, tmp_path, cli, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="gankit"):
        ds = data.load(f"folder:{folder}", img_size=16, stream="auto", memory_budget_gb=N * 3 * 16 * 16 / 2e9)
    assert isinstance(ds, StreamedDataset) and any("more than memory_budget_gb" in r.getMessage()
                                                   for r in caplog.records)
    assert not isinstance(data.load(f"folder:{folder}", img_size=16, stream="auto"), StreamedDataset)
    monkeypatch.setattr("gankit.data.stream.METRICS_SUBSET", 30)
    subset = ds.for_metrics(10)                                       # max(2 x 10, 30) images, in memory
    assert len(subset) == 30 and subset.x.dtype == torch.uint8 and subset is ds.for_metrics(10)
    assert set(_number(subset.batch())) <= set(range(N)) and len(set(_number(subset.batch()))) == 30
    code, _, err = cli("train", *TINY, "--data", f"folder:{folder}", "--channels", 1, "--stream", "on", "--data_workers", 1,
                       "--steps", 2, "--eval_metrics", "fid", "--eval_n", 12, "--out", tmp_path, "--name", "e")
    assert code == 0, err
    assert (tmp_path / "e" / "eval" / "step-0000002.json").is_file()


def test_torchrun_streams_tar_shards(folder, tmp_path):
    write_shards(folder, tmp_path / "sh", per_shard=25)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "gankit",
           "train", *map(str, TINY), "--data", f"shards:{tmp_path / 'sh'}", "--stream", "on", "--data_workers", "1",
           "--steps", "3", "--out", str(tmp_path), "--name", "ddp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["nimg"] == 3 * 16 * 2 and ckpt["batches"] == 3


def test_shards_that_are_cut_or_mislabelled_are_refused_by_name(folder, tmp_path):
    from gankit.errors import UserError

    write_shards(folder, tmp_path / "sh", per_shard=30)
    assert data.load(f"shards:{tmp_path / 'sh'}", img_size=16, stream="off").class_names == ["c0", "c1"]
    names = tmp_path / "sh" / "classes.txt"
    names.write_text("c0\n")                                  # one name short; the final newline names nothing
    with pytest.raises(UserError, match="names 1 classes, but .* has class index 1"):
        data.load(f"shards:{tmp_path / 'sh'}", img_size=16, stream="off")
    names.write_text("c0\nc1\n")
    last = tmp_path / "sh" / "shard-000002.tar"
    last.write_bytes(last.read_bytes()[:3000])                # a copy that stopped part way
    with pytest.raises(UserError, match="shard-000002.tar is truncated"):
        data.load(f"shards:{tmp_path / 'sh'}", img_size=16, stream="on", workers=1)
    with pytest.raises(UserError, match="more than 100,000"):
        data.load(f"shards:{tmp_path}/x-{{0..999999999}}.tar", img_size=16)


# ---- the run's lock, kill -9 and SIGTERM while DataLoader workers decode ----------------------------------------

SRC = str(Path(gankit.__file__).resolve().parents[1])
# The trainer, run by the tests below in a process of its own; its DataLoader workers are forked from it.
#   pause:   after the checkpoint of step 10, writes the workers' pids to $MARKER; from then on a worker asked for a
#            batch sleeps (so it is alive, for certain, when the trainer is killed), and so training waits
#   train:   in step 18, writes the workers' pids to $MARKER and waits, workers alive, for the test's signal
#            from another process (torch's workers take a SIGTERM from their own parent as a request to leave
#            quietly): after SIGTERM the step ends and its state is saved (step 18); Ctrl-C saves the last clean
#            record's (step 15)
TRAINER = """
import json, multiprocessing, os, signal, sys, time
# Ctrl-C as a terminal delivers it: a child inherits an ignored SIGINT from whatever started it (a test runner whose
# earlier tests set it so), and Python then never raises KeyboardInterrupt; a shell gives the default handler
signal.signal(signal.SIGINT, signal.default_int_handler)
from gankit import checkpoint
from gankit.data import stream
from gankit.tasks.gan.trainer import GANTrainer
how, marker = sys.argv.pop(1), os.environ["MARKER"]
if how == "pause":
    save, getitems = checkpoint.save_step, stream.ImageSource.__getitems__
    def save_then_pause(state, folder, step):
        path = save(state, folder, step)
        with open(marker + ".tmp", "w") as f:
            json.dump([p.pid for p in multiprocessing.active_children()], f)
        os.replace(marker + ".tmp", marker)
        return path
    def slow(self, idx):
        if os.path.exists(marker):
            time.sleep(120)
        return getitems(self, idx)
    checkpoint.save_step, stream.ImageSource.__getitems__ = save_then_pause, slow
else:
    from gankit import session
    train_step = GANTrainer.train_step
    def wait_in_step_18(self, k):
        if k == 17:
            with open(marker + ".tmp", "w") as f:
                json.dump([p.pid for p in multiprocessing.active_children()], f)
            os.replace(marker + ".tmp", marker)
            while not session.STOP.is_set():    # SIGTERM sets it (the run stops after this step); Ctrl-C raises here
                time.sleep(0.01)
        return train_step(self, k)
    GANTrainer.train_step = wait_in_step_18
from gankit.cli import main
sys.exit(main(sys.argv[1:]))
"""
STEPS = 20


def _streamed_flags(folder, out, workers=1):
    return [*TINY, "--data", f"folder:{folder}", "--stream", "on", "--data_workers", workers, "--steps", STEPS,
            "--ckpt_every", 10, "--log_every", 5, "--out", out]


def _trainer(how, args, marker):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC, "MARKER": str(marker)}
    return subprocess.Popen([sys.executable, "-c", TRAINER, how, "train", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)   # a process group of its own: the trainer and its workers


def _workers(proc, marker: Path) -> list[int]:
    """The pids of the trainer's DataLoader workers, once it has written them."""
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    return json.loads(marker.read_text())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _same_state(a: Path, b: Path) -> None:
    """Two runs' last checkpoints hold the same counters and the same tensors (models, optimizers, RNG states)."""
    assert_same_end(a, b, STEPS)


@pytest.fixture(scope="module")
def streamed_reference(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("streamed-reference")
    assert main(["train", *map(str, _streamed_flags(folder, out)), "--name", "ref"]) == 0
    return out / "ref"


def test_kill_9_of_a_streamed_run_frees_it_at_once_and_resume_is_exact(folder, tmp_path, cli, streamed_reference):
    run, marker = tmp_path / "cut", tmp_path / "workers.json"
    proc = _trainer("pause", [*_streamed_flags(folder, tmp_path), "--name", "cut"], marker)
    workers = []
    try:
        workers = _workers(proc, marker)
        assert workers and all(map(_alive, workers))
        # a live run is still refused: its workers closed their copies of its lock, the trainer holds it
        code, _, err = cli("train", "--resume", run, "--no-progress")
        assert code == 2 and "in use by another gankit process" in err, err
        for pid in workers:
            held = [os.path.realpath(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            assert str(run.resolve()) not in held, f"worker {pid} holds the run folder open"
        proc.kill()
        proc.wait()
        assert all(map(_alive, workers)), "the orphaned workers are what this test is about"
        run_folder = gankit.run.RunFolder.existing(run)   # at once, orphans alive: the lock ended with the trainer
        run_folder.close()
    finally:
        proc.kill()
        proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert checkpoint.steps_available(run / "checkpoints") == [10]
    code, _, err = cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    _same_state(streamed_reference, run)


@pytest.mark.parametrize("to,sig,code,saved", [("process", signal.SIGTERM, 143, 18), ("group", signal.SIGTERM, 143, 18),
                                               ("group", signal.SIGINT, 130, 15)],
                         ids=["sigterm", "sigterm-group", "ctrl-c"])
def test_sigterm_of_a_streamed_run_saves_and_resume_is_exact(to, sig, code, saved, folder, tmp_path, cli,
                                                             streamed_reference):
    """SIGTERM to the trainer, or to every process of it, workers too (as systemd and Slurm stop a job), and Ctrl-C
    (SIGINT to the terminal's process group); two workers (with one, the trainer's DataLoader noticed a killed
    worker less often)."""
    run, marker = tmp_path / "cut", tmp_path / "workers.json"
    proc = _trainer("train", [*_streamed_flags(folder, tmp_path, workers=2), "--name", "cut"], marker)
    try:
        assert _workers(proc, marker), "no DataLoader worker is running"
        (os.killpg if to == "group" else os.kill)(proc.pid, sig)
        err = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code and f"saved the last clean state (step {saved})" in err, err
    assert "could not save" not in err and "killed by signal" not in err, err
    # the checkpoint of step 10, and saved on the way out: after SIGTERM the step it came in (none lost), after
    # Ctrl-C the last clean record's
    assert checkpoint.steps_available(run / "checkpoints") == [10, saved]
    code, _, err = cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    _same_state(streamed_reference, run)


def test_the_fingerprint_of_10000_files_takes_well_under_a_second(tmp_path):
    for i in range(10_000):
        (tmp_path / f"{i:05d}.png").write_bytes(b"x" * (i % 7))
    source = ImageSource("RGB", 16, "crop", files=sorted(str(p) for p in tmp_path.iterdir()))
    # the digest's own time: a collection of the whole suite's heap (0.4 s for a few million objects) that happens to
    # start inside it is not the digest's
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        n, digest = source.files_digest()
        seconds = time.perf_counter() - t0
    finally:
        gc.enable()
    assert seconds < 0.5 and n == 10_000
    assert source.files_digest() == [n, digest]                                   # the same files, the same digest
    os.utime(tmp_path / "00007.png", ns=(0, 10**18))
    assert source.files_digest()[1] != digest                                     # one file rewritten: another one
