"""Next-frame prediction (task predict): moving digits and video folders, the networks, training, `gankit predict`.

The moving-digit sets are made here from scikit-learn's embedded 8x8 digits upscaled to 28 px (`synthetic`), so the
tests need no MNIST files; the check on MNIST itself runs when ../shared/data/mnist holds them."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit import config
from gankit.tasks.predict import futures as app
from gankit.data import images, moving, video
from gankit.errors import ConfigError, UserError
from gankit.models import predict as nets
from gankit.step import make_optimizers
from gankit.tasks.predict import trainer as task

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny predictor on one moving digit at 16 px: 2 frames given, 2 predicted; 300 digit images held out make 48
# held-out sequences.
TINY = ["--task", "predict", "--model", "unet", "--data", "moving-mnist", "--img_size", "16", "--digits", "1",
        "--frames", "6", "--context", "2", "--horizon", "2", "--n_points", "512", "--holdout", "48", "--z_dim", "4",
        "--g_width", "8", "--d_width", "8", "--batch_size", "16", "--g_lr", "0.002", "--d_lr", "0.001",
        "--adv_weight", "0.1", "--l1_weight", "10", "--log_every", "50", "--sample_every", "1000",
        "--ckpt_every", "0", "--precision", "fp32", "--no-progress"]


def synthetic(data_dir=None):
    return images.load_digits(28, 1)


@pytest.fixture(scope="module")
def digits_source():
    """moving-mnist made of the embedded digits instead of MNIST's files, for this file's tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moving, "mnist_digits", synthetic)
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_source):
    """A tiny GAN predictor trained 300 steps on deterministic moving digits (a few seconds)."""
    from gankit.cli import main

    out = tmp_path_factory.mktemp("predict")
    assert main(["train", *TINY, "--steps", "300", "--out", str(out), "--name", "gan"]) == 0
    return out / "gan"


# ---- moving digits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stochastic", [False, True])
def test_digits_bounce_and_stay_in_the_frame(stochastic):
    rng = np.random.default_rng(0)
    bounces = 0
    for _ in range(50):
        corners, vel, bounced = moving.trajectory(30, 32, 14, 2, stochastic, rng)
        assert corners.min() >= 0 and corners.max() <= 32 - 14
        bounces += bounced.sum()
    assert bounces > 50                                     # they do reach the edges, and come back
    x, _ = moving.make_sequences(synthetic().x[:20], 8, 10, 32, 2, stochastic, seed=1)
    assert x.shape == (8, 10, 1, 32, 32) and x.dtype == torch.uint8
    # a digit's ink is all there in every frame: no frame holds less than the first frame's digits cut at an edge
    ink = x.flatten(2).float().sum(2)                       # (8, 10)
    assert (ink > 0.5 * ink[:, :1]).all()


def test_deterministic_reflects_and_stochastic_draws_a_new_velocity_at_bounces():
    """Deterministic: each axis keeps its speed for ever (a bounce reverses it). Stochastic: velocities change at
    bounces only, and there often to another speed or direction than the reflection."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        _, vel, _ = moving.trajectory(40, 32, 14, 2, False, rng)
        assert (np.abs(vel) == np.abs(vel[:1])).all()
    changed = 0
    for _ in range(30):
        _, vel, bounced = moving.trajectory(40, 32, 14, 2, True, rng)
        moved = (vel[1:] != vel[:-1]).any(1)                # (39,)
        assert not (moved & ~bounced[1:]).any()             # between bounces: a straight line
        changed += (np.abs(vel[1:]) != np.abs(vel[:-1])).any(1)[bounced[1:]].sum()
    assert changed > 20


def test_held_out_sequences_hold_only_digits_training_never_saw():
    source = synthetic()
    train, held = moving.moving_parts("smoving-mnist", source, 16, 300, 6, 2, 100)
    assert len(held) == 100 and held.x.shape == (100, 6, 1, 16, 16)
    seen, unseen = set(train.sources.flatten().tolist()), set(held.sources.flatten().tolist())
    assert not seen & unseen and len(unseen) > 50
    # by content too: no held-out digit image is pixel for pixel one of the training digits
    hashes = lambda idx: {source.x[i].numpy().tobytes() for i in idx}  # noqa: E731
    assert not hashes(seen) & hashes(unseen)
    again, _ = moving.moving_parts("smoving-mnist", source, 16, 300, 6, 2, 100)
    assert torch.equal(again.x, train.x)                     # a fixed data set


def test_moving_mnist_from_the_idx_files(mnist_dir):
    cfg = config.load("smmnist-predict", {"data_dir": str(mnist_dir), "n_points": 64, "holdout": 32})
    train, held = moving.sequence_parts(cfg)
    assert train.x.shape == (64, 20, 1, 32, 32) and held.x.shape == (32, 20, 1, 32, 32)
    assert not set(train.sources.flatten().tolist()) & set(held.sources.flatten().tolist())


# ---- video folders --------------------------------------------------------------------------------------------


def test_video_folder_reads_frames_and_arrays_and_names_what_it_skips(tmp_path, caplog):
    root = tmp_path / "clips"
    (root / "a").mkdir(parents=True)
    for t in range(12):                                     # frame2 before frame10: numbered, not sorted as text
        Image.fromarray(np.full((16, 16), 10 * t, np.uint8)).save(root / "a" / f"frame{t}.png")
    np.save(root / "b.npy", np.full((8, 20, 24), 200, np.uint8))                # resized (cropped) to 16 px
    np.savez(root / "c.npz", frames=np.zeros((7, 16, 16, 1), np.uint8))
    (root / "broken.npy").write_bytes(b"not an array")
    np.save(root / "floats.npy", np.zeros((8, 16, 16), np.float32))
    np.save(root / "short.npy", np.zeros((3, 16, 16), np.uint8))
    (root / "d").mkdir()
    (root / "d" / "0.png").write_bytes(b"\x89PNG broken")
    with caplog.at_level("INFO", logger="gankit"):
        clips = video.load_clips(str(root), 16, 0, 6)
    assert len(clips.clips) == 3 and len(clips.windows) == 2 + 1 + 1
    assert len(clips.skipped) == 4 and {s.split()[0] for s in clips.skipped} == {"broken.npy", "floats.npy",
                                                                              "short.npy", "d"}
    assert "skipped 4" in caplog.text and "broken.npy" in caplog.text
    seq = clips.sequences()
    assert seq.x.shape == (4, 6, 1, 16, 16)
    assert seq.x[0, :, 0, 8, 8].tolist() == [0, 10, 20, 30, 40, 50]      # frame order kept
    assert seq.x[1, :, 0, 8, 8].tolist() == [60, 70, 80, 90, 100, 110] and seq.x[2].eq(200).all()  # a, then b
    with pytest.raises(UserError, match="no readable clip"):
        video.load_clips(str(root / "d"), 16, 0, 6)


def test_video_folder_trains_through_the_cli(tmp_path, cli):
    root = tmp_path / "clips"
    root.mkdir()
    x, _ = moving.make_sequences(synthetic().x[:50], 20, 8, 16, 1, False, seed=0)
    for i, clip in enumerate(x):
        np.save(root / f"{i}.npy", clip[:, 0].numpy())
    args = [a for a in TINY if a not in ("moving-mnist",)]
    args[args.index("--data") + 1: args.index("--data") + 1] = [f"video:{root}"]
    args[args.index("--holdout") + 1] = "4"
    args[args.index("--frames") + 1] = "4"
    code, out, err = cli("train", *args, "--steps", "2", "--batch_size", "8", "--out", tmp_path, "--name", "v")
    assert code == 0, err
    r = json.loads((tmp_path / "v" / "results.json").read_text())
    assert r["n"] == 4 * 2 and set(r["rows"]) == {"G", "last frame", "real"}   # 4 clips of 8 frames: 2 windows each


# ---- the config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,field", [
    ({"context": 15, "horizon": 10}, "frames"), ({"digits": 3}, "digits"), ({"horizon": 0}, "horizon"),
    ({"task": "gan", "model": "dcgan"}, "data"), ({"data": "digits"}, "data"), ({"d_norm": "virtual_batch"}, "d_norm"),
    ({"adv_weight": 0, "l1_weight": 0}, "l1_weight"), ({"holdout": 0}, "holdout"),
    ({"variety_k": 0}, "variety_k"), ({"variety_k": 65}, "variety_k"), ({"variety_k": 4, "l1_weight": 0}, "variety_k"),
    ({"ms_weight": -1}, "ms_weight"), ({"ms_weight": float("nan")}, "ms_weight"),
])
def test_config_names_the_field_at_fault(changes, field):
    with pytest.raises(ConfigError) as e:
        config.load("smmnist-predict", changes)
    assert e.value.field == field


# ---- the networks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16, 24, 32])
def test_networks_shapes_and_the_last_frame_start(size):
    G = nets.Generator(3, 4, 1, z_dim=4, width=8, levels=nets.levels_for(size))
    D = nets.Discriminator(3, 4, 1, width=8, levels=nets.levels_for(size))
    past = torch.rand(2, 3, size, size) * 2 - 1
    fut = G(past, torch.randn(2, 4))
    assert fut.shape == (2, 4, size, size) and D(fut, past).shape == (2,)
    assert torch.equal(fut, past[:, -1:].repeat(1, 4, 1, 1))          # untrained: the last frame, copied


# ---- the variety loss and the mode-seeking term ------------------------------------------------------------------


def tiny_step(tail_std=0.2, **changes):
    """A PredictStep of a tiny G and D (8 px, 2 frames given, 2 predicted, no batch norm, fp32) whose G already
    depends on z (its output layer is drawn at random instead of starting at zero), and one fixed batch."""
    cfg = config.load("smmnist-predict", {"img_size": 8, "context": 2, "horizon": 2, "frames": 4, "z_dim": 4,
                                          "g_width": 8, "d_width": 8, "g_norm": "none", "precision": "fp32",
                                          "batch_size": 6, "ema_decay": 0, "g_lr": 2e-3, "variety_k": 1,
                                          **changes})
    torch.manual_seed(0)
    G, D = nets.Generator(2, 2, 1, 4, 8, 2, "none"), nets.Discriminator(2, 2, 1, 8, 2, "spectral")
    torch.nn.init.normal_(G.tail.weight, std=tail_std)
    step = task.PredictStep(cfg, G, D, None, *make_optimizers(cfg, G, D), torch.device("cpu"))
    past, future = torch.rand(6, 2, 8, 8) * 2 - 1, torch.rand(6, 2, 8, 8) * 2 - 1
    return step, G, (lambda: (past, future)), past, future


def test_variety_loss_is_the_l1_of_the_closest_of_k_draws():
    """With variety_k 3 the step's L1 term is, per context, the smallest of the three draws' L1 distances (by hand:
    one G call per draw, before G's update), averaged; not draw 0's, not the mean over the draws."""
    step, G, batch, past, future = tiny_step(2.0, variety_k=3, adv_weight=0)
    before = copy.deepcopy(G)
    torch.manual_seed(7)
    step(batch, 0)
    recorded = step.tally.read()["loss_l1"]
    torch.manual_seed(7)
    z = torch.randn(3, 6, 4)                                     # the step's draws: draw j of context i is z[j, i]
    with torch.no_grad():
        dist = torch.stack([torch.stack([(before(past[i:i + 1], z[j, i:i + 1]) - future[i]).abs().mean()
                                         for i in range(6)]) for j in range(3)])          # (3 draws, 6 contexts)
    best, first, mean = dist.min(0).values.mean().item(), dist[0].mean().item(), dist.mean().item()
    assert recorded == pytest.approx(best, rel=1e-5)
    assert best < first - 1e-3 and best < mean - 1e-3                       # the draws do differ: the min is not them
    assert task.variety_l1(dist[:, :, None, None, None], torch.zeros(6, 1, 1, 1)).item() == pytest.approx(best)
    # and only the closest draw is pulled towards the truth: G's gradient comes through it alone
    fakes = torch.stack([before(past, z[j]) for j in range(3)]).detach().requires_grad_(True)
    task.variety_l1(fakes, future).backward()
    touched = fakes.grad.flatten(2).abs().sum(2) > 0                        # (3, 6)
    assert torch.equal(touched, dist == dist.min(0).values)


def test_mode_seeking_term_by_hand_and_its_gradient_pushes_the_futures_apart():
    f1, f2, z1, z2 = torch.zeros(2, 3), torch.full((2, 3), 0.5), torch.zeros(2, 4), torch.ones(2, 4)
    assert task.mode_seeking(f1, f2, z1, z2).item() == pytest.approx(1 / (0.5 + 1e-5))
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(4, 8, generator=g).requires_grad_(True), torch.randn(4, 8, generator=g).requires_grad_(True)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    task.mode_seeking(f1, f2, z1, z2).backward()
    assert f1.grad.abs().min() > 0
    with torch.no_grad():                                   # a gradient step moves every coordinate apart
        before = (f1 - f2).abs()
        after = ((f1 - 0.01 * f1.grad) - (f2 - 0.01 * f2.grad)).abs()
    assert (after > before).all()


def spread(G, past):
    """Mean L1 distance between two futures of the same contexts (fixed z)."""
    z = torch.randn(2, len(past), G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (G(past, z[0]) - G(past, z[1])).abs().mean().item()


@pytest.mark.parametrize("switch", [{"ms_weight": 1.0}, {"variety_k": 4}])
def test_each_switch_makes_g_use_its_noise(switch):
    """The same 30 steps from the same start, with L1 alone and with the switch: L1 alone pulls every draw to one
    future (G learns to ignore z); mode seeking and the variety loss keep G's futures apart."""
    spreads = {}
    for name, changes in (("l1", {}), ("switch", switch)):
        step, G, batch, past, _ = tiny_step(adv_weight=0, **changes)
        torch.manual_seed(3)
        for k in range(30):
            step(batch, k)
        spreads[name] = spread(G, past)
    assert spreads["switch"] > 2 * spreads["l1"], spreads


# ---- training and predicting ------------------------------------------------------------------------------------


def test_trained_prediction_follows_the_context(trained, digits_source):
    """After 300 steps on deterministic moving digits, G's futures depend on the context (another context, another
    future) and beat both predicting nothing (blank frames) and copying the last frame, on held-out digits: a G
    that ignored its context could not; one that only copied would tie with the last frame."""
    G, cfg = app.load_predictor(trained)
    held = moving.sequence_parts(cfg)[1].floats()
    past, truth = held[:, :2], held[:, 2:4]
    fut = app.sample_futures(G, past, 1)[:, 0]                                     # (N, 2, 1, 16, 16)
    shuffled = app.sample_futures(G, past.roll(1, 0), 1)[:, 0]
    assert (fut - shuffled).abs().mean() > 0.05
    err = (fut - truth).abs().mean()
    assert err < (-1 - truth).abs().mean() and err < (past[:, -1:] - truth).abs().mean(), err
    r = json.loads((trained / "results.json").read_text())["rows"]
    assert r["G"]["ssim"] > r["last frame"]["ssim"] + 0.05, r  # (PSNR not: a digit at rest gives the copy 100 dB)


def test_gan_futures_differ_and_regression_futures_do_not(trained, digits_source):
    G, cfg = app.load_predictor(trained)
    held = moving.sequence_parts(cfg)[1].floats()
    fut = app.sample_futures(G, held[:8, :2], 4)                                   # (8, 4, 2, 1, 16, 16)
    assert app.diversity(fut) > 1e-3
    last = held[:8, 1:2, None].expand(-1, 4, 2, -1, -1, -1)                       # a predictor without z
    assert app.diversity(last) == 0


def test_predict_writes_gifs_and_futures_of_the_right_shape(trained, tmp_path, cli, digits_source):
    code, out, err = cli("predict", trained, "--context", "heldout", "--futures", "3", "--n", "5", "--out",
                         tmp_path / "f")
    assert code == 0, err
    with np.load(tmp_path / "f" / "futures.npz") as f:
        assert f["futures"].shape == (5, 3, 2, 16, 16) and f["futures"].dtype == np.uint8
    gif = Image.open(tmp_path / "f" / "seq-0004.gif")
    assert gif.n_frames == 4 and gif.size[0] == 4 * (64 + 4)                       # truth + 3 futures, 2 + 2 frames
    assert json.loads((tmp_path / "f" / "results.json").read_text())["futures"] == 3
    # a user's file of sequences (with a channel axis), from Python; never written over
    frames = (np.random.default_rng(0).random((2, 5, 16, 16, 1)) * 255).astype(np.uint8)
    np.savez(tmp_path / "ctx.npz", frames=frames)
    files = gankit.predict(trained, tmp_path / "ctx.npz", 2, tmp_path / "g")
    with np.load(tmp_path / "g" / "futures.npz") as f:
        assert f["futures"].shape == (2, 2, 2, 16, 16, 1)
    assert len(files) == 3 and not (tmp_path / "g" / "results.json").exists()
    assert cli("predict", trained, "--context", "heldout", "--out", tmp_path / "f")[0] == 2
    code, _, err = cli("predict", trained, "--context", tmp_path / "missing.npz", "--out", tmp_path / "h")
    assert code == 2 and "context" in err and not (tmp_path / "h").exists()


def test_two_step_training_from_the_cli(tmp_path, cli, digits_source):
    code, out, err = cli("train", *TINY, "--data", "smoving-mnist", "--steps", "2", "--adv_weight", "0", "--out",
                         tmp_path, "--name", "s")
    assert code == 0, err
    assert "| G |" in out and (tmp_path / "s" / "checkpoints" / "latest.pt").is_file()
    code, out, err = cli("train", *TINY, "--data", "smoving-mnist", "--steps", "2", "--variety_k", "3",
                         "--ms_weight", "1", "--log_every", "1", "--out", tmp_path, "--name", "v")
    assert code == 0, err
    r = json.loads((tmp_path / "v" / "results.json").read_text())
    assert r["variety_k"] == 3 and r["ms_weight"] == 1.0
    assert " ms " in out + err
    code, _, err = cli("upscale", tmp_path / "s", "--images", "heldout", "--out", tmp_path / "u")
    assert code == 2 and "task predict" in err
