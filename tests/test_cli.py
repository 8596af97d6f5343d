import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY


def test_train_writes_run_folder(tiny_run):
    files = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "samples", "checkpoints", "metrics.jsonl", "tb"} <= files
    assert (tiny_run / "samples" / "step-0000020.png").is_file()
    assert (tiny_run / "checkpoints" / "latest.pt").is_file()
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert all({"D(x)", "D(G(z))", "loss_d", "loss_g"} <= r.keys() for r in rows)
    assert list((tiny_run / "tb").iterdir())  # a TensorBoard event file


def test_sample_npz_and_pngs(tiny_run, tmp_path, cli):
    code, out, err = cli("sample", tiny_run, "--n", 37, "--out", tmp_path / "s.npz")
    assert code == 0, err
    arr = np.load(tmp_path / "s.npz")
    assert arr["images"].shape == (37, 16, 16, 1) and arr["images"].dtype == np.uint8
    assert "labels" not in arr
    assert cli("sample", tiny_run, "--n", 3, "--out", tmp_path / "pngs")[0] == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 3
    # the same seed gives the same samples; nothing is overwritten
    cli("sample", tiny_run / "checkpoints" / "latest.pt", "--n", 37, "--out", tmp_path / "t.npz")
    assert np.array_equal(np.load(tmp_path / "t.npz")["images"], arr["images"])
    code, _, err = cli("sample", tiny_run, "--n", 3, "--out", tmp_path / "s.npz")
    assert code == 2 and "exists" in err


def test_existing_run_folder_is_never_overwritten(tiny_run, cli):
    before = (tiny_run / "checkpoints" / "latest.pt").read_bytes()
    code, _, err = cli("train", *TINY, "--steps", 2, "--out", tiny_run.parent, "--name", "tiny")
    assert code == 2 and "--resume" in err
    assert (tiny_run / "checkpoints" / "latest.pt").read_bytes() == before


def test_default_names_are_numbered(tmp_path, cli):
    for _ in range(2):
        assert cli("train", *TINY, "--steps", 1, "--out", tmp_path)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dcgan-digits", "dcgan-digits-2"]


def test_dry_run_prints_resolved_config(cli):
    code, out, _ = cli("train", "--config", "digits", "--steps", "7", "--dry-run")
    assert code == 0 and "steps: 7" in out and "data: digits" in out


def test_resume_refuses_a_changed_model(tiny_run, cli):
    code, _, err = cli("train", "--resume", tiny_run, "--g_width", 16, "--steps", 30)
    assert code == 2 and "g_width" in err and "cannot change on resume" in err


@pytest.mark.parametrize("args,needle", [
    (["train", "--data", "imagenet"], "unknown data set 'imagenet'"),
    (["train", "--model", "resnet"], "model: 'resnet' is not one of dcgan, r3gan, mlp"),
    (["train", "--img_size", "24"], "img_size: dcgan supports 16, 32, 64, 128"),
    (["train", "--batch_size", "0"], "batch_size: must be a positive integer"),
    (["train", "--steps", "many"], "steps: expected int"),
    (["train", "--data", "folder:/no/such/folder", "--steps", "1"], "does not exist"),
    (["train", "--data", "mnist", "--data_dir", "/no/such/dir", "--steps", "1"], "train-images-idx3-ubyte.gz"),
    (["train", "--config", "no-such-preset"], "presets: "),
    (["train", "--lr", "1"], "unrecognized arguments"),
    (["sample", "/no/such/run", "--out", "x.npz"], "neither a run folder nor a checkpoint"),
])
def test_user_errors_are_one_line_exit_2(cli, args, needle):
    code, out, err = cli(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_unreadable_checkpoint_through_the_real_cli(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "gankit", "sample", str(bad), "--out", str(tmp_path / "s.npz")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mnist_trains_from_idx_files(mnist_dir, tmp_path, cli):
    code, out, err = cli("train", "--data", "mnist", "--data_dir", mnist_dir, "--img_size", 32, "--g_width", 4,
                         "--d_width", 4, "--z_dim", 8, "--batch_size", 16, "--steps", 3, "--out", tmp_path,
                         "--no-progress")
    assert code == 0, err
    assert (tmp_path / "dcgan-mnist" / "samples" / "step-0000003.png").is_file()
