"""Read-only and full disks: one line, exit 2, nothing lost. A small tmpfs is mounted for each test (root with
mount rights, as on the development machine and CI); elsewhere a read-only folder is made with chmod, and the
full-disk test is skipped."""

import os
import shutil
import subprocess

import pytest
import torch

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _mount(path, options):
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def disk(tmp_path):
    """disk(size) -> a folder on its own small file system; disk.readonly(folder) makes it read-only."""
    mounted = []

    class Disk:
        def __call__(self, size="64m"):
            path = tmp_path / f"disk{len(mounted)}"
            if os.geteuid() != 0 or not _mount(path, f"size={size}"):
                if size != "64m":
                    pytest.skip("a small file system needs root with mount rights")
                path.mkdir(exist_ok=True)
                return path
            mounted.append(path)
            return path

        def readonly(self, path):
            if path in mounted:
                assert subprocess.run(["mount", "-o", "remount,ro", str(path)]).returncode == 0
            else:
                os.chmod(path, 0o555)
                if os.access(path, os.W_OK) and os.geteuid() == 0:
                    pytest.skip("root ignores chmod and mount is not allowed here")

    yield Disk()
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _one_line(code, err, needle=""):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("train: step")]  # --no-progress lines
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_read_only_outputs_of_train_sample_eval_report(disk, tiny_run, cli):
    ro = disk()
    run = shutil.copytree(tiny_run, ro / "tiny")
    disk.readonly(ro)
    before = _files(ro)
    _one_line(*cli("train", *TINY, "--steps", 2, "--out", ro, "--name", "new")[::2], "Read-only")
    _one_line(*cli("train", "--resume", run, "--steps", 30, "--no-progress")[::2])
    _one_line(*cli("sample", run, "--out", ro / "s.npz")[::2], "Read-only")
    _one_line(*cli("sample", run, "--n", 2, "--out", ro / "pngs")[::2], "Read-only")
    _one_line(*cli("eval", run, "--metrics", "fid", "--n", 50)[::2], "Read-only")          # before any work
    _one_line(*cli("report", run)[::2], "Read-only")
    assert _files(ro) == before


def test_a_full_disk_keeps_the_last_checkpoint(disk, cli):
    small = disk("600k")
    code, _, err = cli("train", *TINY, "--steps", 200, "--ckpt_every", 5, "--log_every", 5, "--sample_every", 1000,
                       "--out", small, "--name", "r")
    _one_line(code, err, "No space left")
    ckpts = small / "r" / "checkpoints"
    state = torch.load(ckpts / "latest.pt", weights_only=True)       # the last whole checkpoint, readable
    assert state["step"] >= 5 and not list(ckpts.glob(".*.tmp*"))
    code, _, err = cli("sample", small / "r", "--n", 2, "--out", small.parent / "s.npz")
    assert code == 0, err
