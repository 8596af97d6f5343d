"""Streaming (stream: on): batches decoded in DataLoader workers from a folder or from tar shards are the batches
the same set held in memory gives; each torchrun process reads its own part; a resumed run equals an uninterrupted
one; metrics use a fixed subset."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from gankit import data, distributed
from gankit.data.shards import write_shards
from gankit.data.stream import Draw, StreamedDataset

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
