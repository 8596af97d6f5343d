"""Every model, conditioning mode and trick is reachable from the CLI and from a config file, and trains."""
import numpy as np
import pytest
import torch
import yaml

from conftest import TINY

SWITCHES = [
    ("model", "mlp"), ("cond", "concat"), ("cond", "projection"), ("prior", "uniform"), ("prior", "sphere"),
    ("g_norm", "virtual_batch"), ("d_norm", "virtual_batch"), ("g_norm", "instance"), ("d_norm", "layer"),
    ("d_norm", "spectral"), ("g_norm", "none"), ("g_act", "leaky_relu"), ("d_act", "relu"), ("d_down", "avgpool"),
    ("d_down", "maxpool"), ("g_up", "nearest"), ("g_up", "unpool"), ("d_batching", "mixed"), ("d_steps", "2"),
    ("g_steps", "2"), ("label_smooth", "0.9"), ("inst_noise", "0.1"), ("feature_matching", "true"),
    ("mbdisc", "4"), ("mbstd", "true"), ("pack", "2"), ("loss", "minimax"), ("loss", "ls"), ("loss", "hinge"),
    ("loss", "wgan-gp"), ("r1_gamma", "1"), ("ema_decay", "0.9"), ("diffaug", "color,translation,cutout"),
    ("lr_decay_start", "0.5"),
]


@pytest.mark.parametrize("field,value", SWITCHES, ids=[f"{f}={v}" for f, v in SWITCHES])
def test_switch_trains_from_the_cli(tmp_path, cli, field, value):
    code, _, err = cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "r", f"--{field}", value)
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert str(saved[field]).lower() == value.lower() or saved[field] == float(value)


def test_a_config_file_sets_the_same_fields(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": "digits", "img_size": 16, "z_dim": 8, "g_width": 8, "d_width": 8,
                                   "batch_size": 16, "steps": 3, "d_steps": 3, "g_steps": 2, "g_lr": 1e-3,
                                   "d_lr": 5e-4, "cond": "concat", "g_norm": "virtual_batch", "d_down": "avgpool"}))
    code, _, err = cli("train", "--config", cfg, "--out", tmp_path, "--name", "r", "--no-progress")
    assert code == 0, err
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["config"]["c_dim"] == 10                          # taken from the data set
    assert ckpt["opt_d"]["state"][0]["step"].item() == 9          # 3 steps x d_steps 3
    assert ckpt["opt_g"]["state"][0]["step"].item() == 6          # 3 steps x g_steps 2
    assert ckpt["opt_g"]["param_groups"][0]["lr"] == 1e-3 and ckpt["opt_d"]["param_groups"][0]["lr"] == 5e-4


def test_unknown_field_in_a_config_file_is_named(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("g_widht: 8\n")
    code, _, err = cli("train", "--config", cfg)
    assert code == 2 and "g_widht" in err and "g_width" in err


def test_conditional_sampling_and_class_grid(tmp_path, cli):
    code, _, err = cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "c", "--cond", "projection")
    assert code == 0, err
    code, _, err = cli("sample", tmp_path / "c", "--class", 3, "--n", 5, "--out", tmp_path / "s.npz")
    assert code == 0, err
    s = np.load(tmp_path / "s.npz")
    assert s["images"].shape == (5, 16, 16, 1) and s["labels"].tolist() == [3] * 5
    code, _, err = cli("sample", tmp_path / "c", "--class-grid", "--n", 4, "--out", tmp_path / "g.png")
    assert code == 0, err
    from PIL import Image
    w, h = Image.open(tmp_path / "g.png").size
    assert (w, h) == (2 + 4 * 18, 2 + 10 * 18)  # 4 columns, one row per class, 16 px + 2 px padding
    code, _, err = cli("sample", tmp_path / "c", "--class", 12, "--out", tmp_path / "t.npz")
    assert code == 2 and "0..9" in err


def test_class_grid_rows_share_z(tmp_path, cli):
    from gankit.sample import load_sampler
    cli("train", *TINY, "--steps", 1, "--out", tmp_path, "--name", "c", "--cond", "concat", "--g_norm", "none")
    sampler = load_sampler(tmp_path / "c")
    grid = sampler.class_grid(3, torch.Generator().manual_seed(1))
    z = sampler.z(3, torch.Generator().manual_seed(1))
    assert torch.allclose(grid[3:6], sampler.decode(z, torch.full((3,), 1)), atol=1e-6)


def test_class_flag_needs_a_conditional_model(tiny_run, tmp_path, cli):
    code, _, err = cli("sample", tiny_run, "--class", 1, "--out", tmp_path / "s.npz")
    assert code == 2 and "conditional" in err


def test_points_run_samples_points(tmp_path, cli):
    code, out, err = cli("train", "--data", "ring", "--model", "mlp", "--z_dim", 2, "--g_width", 16, "--d_width",
                         16, "--n_points", 512, "--batch_size", 64, "--steps", 3, "--eval_metrics", "modes",
                         "--eval_n", 200, "--out", tmp_path, "--name", "p", "--no-progress")
    assert code == 0, err
    assert "modes" in out  # the final evaluation is printed
    assert (tmp_path / "p" / "samples" / "step-0000003.png").is_file()  # the scatter plot
    code, _, err = cli("sample", tmp_path / "p", "--n", 50, "--out", tmp_path / "p.npz")
    assert code == 0, err
    pts = np.load(tmp_path / "p.npz")["points"]
    assert pts.shape == (50, 2) and pts.dtype == np.float32


@pytest.mark.parametrize("args,needle", [
    (["--data", "ring", "--model", "dcgan"], "model: 2-D data set ring needs model mlp"),
    (["--data", "ring", "--model", "mlp", "--cond", "concat"], "has no class labels"),
    (["--pack", "3"], "pack: batch_size 16 must be a multiple of 3"),
    (["--model", "mlp", "--g_norm", "instance"], "instance norm needs feature maps"),
    (["--diffaug", "flip"], "diffaug: unknown op flip"),
    (["--cond", "concat", "--c_dim", "7"], "has 10 classes, not 7"),
])
def test_invalid_combinations_name_the_field(tmp_path, cli, args, needle):
    code, _, err = cli("train", *TINY, "--steps", 1, "--out", tmp_path, *args)
    assert code == 2 and needle in err, err
