"""torchrun / DDP on CPU with the gloo backend: two processes, one machine."""
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY
from gankit import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _average_worker(rank: int, port: int, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    ctx = distributed.init("cpu")
    layer = torch.nn.Linear(2, 1)
    distributed.broadcast_module(layer, ctx)              # every rank starts from rank 0's weights
    layer.weight.grad = torch.full_like(layer.weight, float(rank))
    layer.bias.grad = torch.full_like(layer.bias, 10.0 * rank)
    distributed.average_gradients(layer, ctx)
    out[rank] = torch.cat([layer.weight.grad.flatten(), layer.bias.grad, layer.weight.detach().flatten()])
    dist.destroy_process_group()


def test_gradients_are_averaged_and_weights_broadcast():
    out = mp.Manager().dict()
    mp.spawn(_average_worker, args=(_free_port(), out), nprocs=2)
    a, b = out[0], out[1]
    assert torch.equal(a, b)                               # same gradients and weights on both ranks
    assert a[:3].tolist() == [0.5, 0.5, 5.0]               # (0 + 1) / 2 and (0 + 10) / 2


def test_torchrun_trains_two_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "gankit",
           "train", *map(str, TINY), "--steps", "4", "--out", str(tmp_path), "--name", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["nimg"] == 4 * 16 * 2                      # both ranks' images are counted
    assert isinstance(ckpt["rng"], list) and len(ckpt["rng"]) == 2   # each rank's RNG state, for resume
    assert len(list((tmp_path).iterdir())) == 1            # only rank 0 made a run folder
