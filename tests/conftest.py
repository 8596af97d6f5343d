import os
from pathlib import Path

import pytest
import torch

from gankit.cli import main

os.environ.setdefault("GANKIT_OFFLINE", "1")  # tests never try to download
# 2 threads, or fewer when OMP_NUM_THREADS says so: two threads on a core another process keeps busy wait on each
# other and run many times slower.
torch.set_num_threads(min(2, int(os.environ.get("OMP_NUM_THREADS") or 2)))

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("GANKIT_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))

# A tiny DCGAN on digits: trains in about a second per 20 steps on 2 cores.
TINY = ["--data", "digits", "--img_size", "16", "--z_dim", "8", "--g_width", "8", "--d_width", "8",
        "--batch_size", "16", "--log_every", "5", "--sample_every", "10", "--ckpt_every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def one_thread():
    """For files of tiny models (`pytestmark = pytest.mark.usefixtures("one_thread")`): a second intra-op thread
    only adds waiting, and on a busy 2-core machine it made them about 2.5x slower. Restored after the file."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse exits on bad flags
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def mnist_dir():
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR} (set GANKIT_MNIST_DIR)")
    return MNIST_DIR


@pytest.fixture
def tiny_run(tmp_path, cli):
    """A trained tiny run folder (20 steps)."""
    code, out, err = cli("train", *TINY, "--steps", 20, "--out", tmp_path, "--name", "tiny")
    assert code == 0, err
    return tmp_path / "tiny"


def checkpoint_tensors(state: dict) -> dict:
    """Every tensor of a checkpoint's models, averaged copies, optimizers and RNG states, by a path of keys."""
    flat = {}

    def walk(obj, path):
        if isinstance(obj, torch.Tensor):
            flat[path] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
    for part in ("G", "D", "G_ema", "D_ema", "opt_g", "opt_d", "rng"):
        walk(state.get(part), part)
    return flat


def assert_same_end(a: Path, b: Path, steps: int) -> None:
    """Two runs' latest checkpoints: at `steps`, with the same counters and bit for bit the same tensors."""
    sa, sb = (torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in (a, b))
    assert sa["step"] == sb["step"] == steps and (sa["nimg"], sa["batches"]) == (sb["nimg"], sb["batches"])
    ta, tb = checkpoint_tensors(sa), checkpoint_tensors(sb)
    assert ta.keys() == tb.keys() and len(ta) > 10
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"differ after the interruption: {differ[:5]}"
