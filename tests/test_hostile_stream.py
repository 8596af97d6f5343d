"""A corpus of resumes on training data that changed since the checkpoint: image folders and tar shards, streamed or
held in memory, and MNIST's IDX files under data_dir. Each refused case is held to the promise of tests/hostile.py
(refused in one line that says what changed and what to do, with nothing changed); the plain tests after the corpus
show that the same data, an older checkpoint without a fingerprint, and a copy of a file with its bytes unchanged
(in memory) still resume, and exactly.

The fixture's runs name their data by paths relative to the working folder (folder:w/imgs), so that a case's copy
of a run reads the case's own copy of the data: run_case works in the case's folder.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from hostile import Corpus, run_case
from gankit import checkpoint
from gankit.cli import main
from gankit.data.shards import write_shards

pytestmark = pytest.mark.usefixtures("one_thread")

N, MNIST_N = 40, 200
# run name: (what --data says, its flags); trained 10 steps, one checkpoint
RUNS = {"streamed": ("folder:w/imgs", ["--stream", "on", "--data_workers", "1"]),
        "held": ("folder:w/imgs", ["--stream", "off"]),
        "shards": ("shards:w/sh", ["--stream", "on", "--data_workers", "1"]),
        "mnist": ("mnist", ["--data_dir", "w/idx"])}
DATA = {"streamed": "imgs", "held": "imgs", "shards": "sh", "mnist": "idx"}
RESUME = ["--steps", "12", "--no-progress"]


def images(root: Path, numbers) -> None:
    """16x16 images of seeded noise in two class folders, c0 and c1: image i is i.png in c{i % 2}."""
    for i in numbers:
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.RandomState(i).randint(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            root / f"c{i % 2}" / f"{i:03d}.png")


def write_idx(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """MNIST's training IDX files (uncompressed): x (n, 28, 28) uint8, y (n,) labels."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, *x.shape) + x.tobytes())
    (root / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, len(y)) + y.astype(np.uint8).tobytes())


def mnist_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, 28, 28), dtype=np.uint8), rng.randint(0, 10, n)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-stream")
    w = root / "w"
    images(w / "imgs", range(N))
    write_shards(w / "imgs", w / "sh", per_shard=20)                        # shard-000000.tar, shard-000001.tar
    write_idx(w / "idx", *mnist_like(MNIST_N))
    images(root / "more", range(N, N + 20))                                   # 20 other images
    write_shards(root / "more", root / "more-sh", per_shard=20)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for name, (data, flags) in RUNS.items():
            assert main(["train", *TINY, "--data", data, *flags, "--steps", "10", "--ckpt_every", "10",
                         "--out", "w/runs", "--name", name]) == 0
    finally:
        os.chdir(cwd)
    return {"root": root, "more": root / "more", "more-sh": root / "more-sh"}


def copy(fx, w: Path, run: str) -> Path:
    """The run and its data, copied into the case's folder (times kept, as a backup restored with them would);
    returns the copy of the data."""
    shutil.copytree(fx["root"] / "w" / "runs" / run, w / "runs" / run)
    return Path(shutil.copytree(fx["root"] / "w" / DATA[run], w / DATA[run]))


CASES = Corpus()


def changed(name, run, change, needle, flags=()):
    def setup(w, fx):
        change(copy(fx, w, run), fx)
        return ["train", "--resume", f"w/runs/{run}", *RESUME, *flags]
    CASES.case(f"{run}-{name}", setup, "error", needle)


def add_images(d, fx):
    for p in fx["more"].rglob("*.png"):
        shutil.copy2(p, d / p.relative_to(fx["more"]))


def remove_images(d, fx, k=5):
    for p in sorted(d.rglob("*.png"))[:k]:
        p.unlink()


def replace_image(d, fx):
    victim = sorted(d.rglob("*.png"))[3]
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(victim)     # another picture under the same name


def rename_image(d, fx):
    victim = sorted(d.rglob("*.png"))[0]
    victim.rename(victim.with_name("zzz.png"))


def relabel_image(d, fx):
    victim = sorted((d / "c0").glob("*.png"))[0]
    shutil.move(victim, d / "c1" / victim.name)                          # the same file, now in the other class


def touch_image(d, fx):
    victim = sorted(d.rglob("*.png"))[0]
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


TRAINED_ON = "changed since the checkpoint"
for run in ("streamed", "held"):
    counted = "images" if run == "streamed" else "training examples"
    changed("images-added", run, add_images, f"{N} {counted} then, {N + 20} now")
    changed("images-removed", run, remove_images, f"{N} {counted} then, {N - 5} now")
    changed("image-replaced", run, replace_image, f"still {N} {counted}")
    changed("image-relabelled", run, relabel_image, f"still {N} {counted}")
changed("image-renamed", "streamed", rename_image, "names, sizes or modification times")
# a streamed set's images are not read to fingerprint it: a file rewritten, even with the same bytes, is a change
changed("image-touched", "streamed", touch_image, "modification times")
# stream switched on resume (it may change): the files the run was trained on are compared
changed("images-added-stream-off", "streamed", add_images, f"{N} images then, {N + 20} now", ["--stream", "off"])
changed("images-added-stream-on", "held", add_images, f"{N} images then, {N + 20} now", ["--stream", "on"])
changed("says-what-to-do", "streamed", add_images, "put the data back as it was, or train a new run")
changed("names-the-data", "streamed", add_images, f"the training data (folder:w/imgs) {TRAINED_ON}")


def add_shard(d, fx):
    shutil.copy2(fx["more-sh"] / "shard-000000.tar", d / "shard-000002.tar")


def replace_shard(d, fx):
    shutil.copy2(fx["more-sh"] / "shard-000000.tar", d / "shard-000001.tar")   # 20 other images for 20


changed("shard-added", "shards", add_shard, f"{N} images then, {N + 20} now")
changed("shard-removed", "shards", lambda d, fx: (d / "shard-000001.tar").unlink(), f"{N} images then, 20 now")
changed("shard-replaced", "shards", replace_shard, f"still {N} images")


def idx_more(d, fx):
    write_idx(d, *mnist_like(MNIST_N + 40))


def idx_one_image(d, fx):
    x, y = mnist_like(MNIST_N)
    x[17] = 255 - x[17]                     # one image of 200 inverted (a pixel alone may not survive the resize)
    write_idx(d, x, y)


def idx_one_label(d, fx):
    x, y = mnist_like(MNIST_N)
    y[17] = (y[17] + 1) % 10
    write_idx(d, x, y)


changed("idx-more-images", "mnist", idx_more, f"{MNIST_N} training examples then, {MNIST_N + 40} now")
changed("idx-one-image", "mnist", idx_one_image, f"still {MNIST_N} training examples, but their contents differ")
changed("idx-one-label", "mnist", idx_one_label, f"still {MNIST_N} training examples, but their contents differ")


@pytest.mark.parametrize("c", CASES, ids=CASES.ids)
def test_hostile_case(c, fx, tmp_path, capsys, monkeypatch):
    run_case(c, fx, tmp_path, capsys, monkeypatch)


# ------------------------------------------------------------------------------------------------------------------
# what still resumes


def _resume(fx, tmp_path, monkeypatch, run, change=None, strip=False):
    """The run's copy resumed to step 12 in tmp_path (its data changed by `change`, its checkpoint's fingerprint
    removed with `strip`, as a checkpoint of an older gankit has none); its last checkpoint."""
    w = tmp_path / "w"
    w.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    d = copy(fx, w, run)
    ckpts = w / "runs" / run / "checkpoints"
    if strip:
        state = checkpoint.load(ckpts / "latest.pt")
        assert state.pop("data")["examples"] in (N, MNIST_N)
        checkpoint.save_step(state, ckpts, 10)
    if change:
        change(d, fx)
    assert main(["train", "--resume", f"w/runs/{run}", *RESUME]) == 0
    return torch.load(ckpts / "latest.pt", weights_only=True)


def _same(a: dict, b: dict) -> None:
    for part in ("G", "D", "opt_g", "opt_d"):
        sa, sb = a[part], b[part]
        flat_a = sa if part in ("G", "D") else {k: v for s in sa["state"].values() for k, v in s.items()}
        flat_b = sb if part in ("G", "D") else {k: v for s in sb["state"].values() for k, v in s.items()}
        assert flat_a.keys() == flat_b.keys() and all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a), part
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]) and (a["step"], a["batches"]) == (b["step"], b["batches"])


@pytest.mark.parametrize("run", list(RUNS))
def test_the_same_data_resumes_and_keeps_its_fingerprint(run, fx, tmp_path, monkeypatch):
    before = checkpoint.load(fx["root"] / "w" / "runs" / run / "checkpoints" / "latest.pt")["data"]
    after = _resume(fx, tmp_path, monkeypatch, run)
    assert after["step"] == 12 and after["data"] == before
    assert before["examples"] == (MNIST_N if run == "mnist" else N)


def test_a_checkpoint_without_a_fingerprint_resumes_as_before_and_exactly(fx, tmp_path, monkeypatch):
    with_it = _resume(fx, tmp_path / "a", monkeypatch, "streamed")
    without = _resume(fx, tmp_path / "b", monkeypatch, "streamed", strip=True)
    _same(with_it, without)                                 # the fingerprint changes nothing else in a checkpoint
    assert without["data"] == with_it["data"]               # ... and the resumed run's checkpoints have one
    grown = _resume(fx, tmp_path / "c", monkeypatch, "streamed", add_images, strip=True)
    assert grown["step"] == 12 and grown["data"]["examples"] == N + 20   # not checked: it goes on, as it always did


def test_in_memory_a_file_rewritten_with_the_same_bytes_resumes(fx, tmp_path, monkeypatch):
    after = _resume(fx, tmp_path, monkeypatch, "held", touch_image)
    assert after["step"] == 12
