"""A corpus of hostile inputs to the newer ways of drawing from a run: D-guided sampling and its options on
`gankit sample` and `gankit eval` (--guide, --weights, --drs-percentile, --mh-steps, --ddls-steps, --ddls-step-size,
--truncation, --checkpoint best), an audio run's clips and interpolation, and `gankit predict` with a user's context
file. Each case is held to the promise of tests/hostile.py: refused in one line with nothing changed, or done and
checked.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile

from conftest import TINY
from hostile import Corpus, run_case
from gankit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = Corpus()
case = CASES.case

AUDIO = ["--sample_rate", "8000", "--audio_length", "1024", "--z_dim", "8", "--g_width", "4", "--d_width", "4",
         "--batch_size", "6", "--log_every", "1", "--sample_every", "2", "--ckpt_every", "0", "--no-progress",
         "--model", "specgan", "--img_size", "32"]
PREDICT = ["--task", "predict", "--model", "unet", "--data", "moving-mnist", "--img_size", "16", "--digits", "1",
           "--frames", "6", "--context", "2", "--horizon", "2", "--n_points", "64", "--holdout", "24", "--z_dim", "4",
           "--g_width", "4", "--d_width", "4", "--batch_size", "8", "--log_every", "1", "--sample_every", "1000",
           "--ckpt_every", "0", "--precision", "fp32", "--no-progress"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """A tiny image run (its checkpoint holds D), a conditional one, a tiny conditional audio run on tones, and a
    tiny predictor on moving digits made of the embedded digits."""
    from gankit.data import images, moving

    root = tmp_path_factory.mktemp("hostile-sampling")
    tones = root / "tones"
    for c, freq in enumerate((300, 900)):
        (tones / f"tone{c}").mkdir(parents=True)
        t = np.arange(1600) / 8000
        for i in range(4):
            soundfile.write(str(tones / f"tone{c}" / f"{i}.wav"), 0.5 * np.sin(2 * np.pi * freq * (1 + 0.01 * i) * t),
                            8000, subtype="PCM_16")
    runs = {"gan": [*TINY], "cond": [*TINY, "--cond", "projection"],
            "audio": ["--data", f"audio:{tones}", *AUDIO, "--cond", "concat"]}
    for name, flags in runs.items():
        assert main(["train", *flags, "--steps", "4", "--out", str(root), "--name", name]) == 0, name
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moving, "mnist_digits", lambda data_dir=None: images.load_digits(28, 1))
        assert main(["train", *PREDICT, "--steps", "2", "--out", str(root), "--name", "predict"]) == 0
    return {name: root / name for name in (*runs, "predict")}


# ------------------------------------------------------------------------------------------------------------------
# 1. gankit sample and gankit eval: the guides and their options


def sm(name, needle="", extra=(), run="gan", expect="error", check=None, out="s.npz", command="sample"):
    def setup(w, fx):
        argv = [command, fx[run], *extra]
        return argv + (["--out", w / out] if command == "sample" else [])
    case(f"{command}-{name}", setup, expect, needle, check)


def _n_images(n):
    def check(w, fx):
        assert np.load(w / "s.npz")["images"].shape[0] == n
    return check


sm("guide-unknown", "guide", ["--guide", "best"])
sm("guide-empty", "guide", ["--guide", ""])
sm("guide-upper", "guide", ["--guide", "DRS"])
sm("weights-unknown", "weights", ["--weights", "avg"])
sm("weights-empty", "weights", ["--weights", ""])
sm("drs-percentile-nan", "percentile", ["--guide", "drs", "--drs-percentile", "nan"])
sm("drs-percentile-101", "percentile", ["--guide", "drs", "--drs-percentile", "101"])
sm("drs-percentile-negative", "percentile", ["--guide", "drs", "--drs-percentile", "-1"])
sm("drs-percentile-text", "percentile", ["--guide", "drs", "--drs-percentile", "high"])
sm("mh-steps-zero", "mh", ["--guide", "mh", "--mh-steps", "0"])
sm("mh-steps-negative", "mh", ["--guide", "mh", "--mh-steps", "-4"])
sm("mh-steps-huge", "mh", ["--guide", "mh", "--mh-steps", "10000000000"])
sm("ddls-steps-zero", "ddls", ["--guide", "ddls", "--ddls-steps", "0"])
sm("ddls-step-size-zero", "step", ["--guide", "ddls", "--ddls-step-size", "0"])
sm("ddls-step-size-inf", "step", ["--guide", "ddls", "--ddls-step-size", "inf"])
sm("ddls-step-size-nan", "step", ["--guide", "ddls", "--ddls-step-size", "nan"])
sm("ddls-step-size-negative", "step", ["--guide", "ddls", "--ddls-step-size", "-0.1"])
sm("truncation-zero", "truncation", ["--truncation", "0"])
sm("truncation-above-one", "truncation", ["--truncation", "1.5"])
sm("truncation-nan", "truncation", ["--truncation", "nan"])
sm("option-without-its-guide", "drs", ["--drs-percentile", "50"])        # an option of a guide not asked for
sm("checkpoint-best-without-best", "best", ["--checkpoint", "best"])   # the run kept no best checkpoint
sm("checkpoint-text", "checkpoint", ["--checkpoint", "latest-ish"])
sm("guide-on-export", "guide", ["--guide", "drs"], run="gan-export")
sm("guide-ddls-ok", extra=["--guide", "ddls", "--ddls-steps", "2", "--n", "6"], expect="ok", check=_n_images(6))
sm("guide-drs-ok", extra=["--guide", "drs", "--n", "5"], expect="ok", check=_n_images(5))
sm("weights-raw-ok", extra=["--weights", "raw", "--n", "3"], expect="ok", check=_n_images(3))
sm("class-with-guide-out-of-range", "class", ["--guide", "mh", "--class", "10"], run="cond")
sm("eval-option-without-its-guide", "mh", ["--mh-steps", "5"], command="eval")
sm("eval-guide-unknown", "guide", ["--guide", "nope"], command="eval")
sm("eval-truncation-negative", "truncation", ["--truncation", "-0.5"], command="eval")
sm("eval-weights-unknown", "weights", ["--weights", "both"], command="eval")


@pytest.fixture(scope="module", autouse=True)
def _export(fx):
    """The image run's export (no D), for the guide-on-export case."""
    out = fx["gan"].parent / "gan-export"
    if not out.exists():
        assert main(["export", str(fx["gan"]), "--out", str(out)]) == 0
    fx["gan-export"] = out


# ------------------------------------------------------------------------------------------------------------------
# 2. an audio run: what sample and interpolate write


def _wavs(n, rate=8000, frames=1024):
    def check(w, fx):
        wavs = sorted((w / "clips").glob("*.wav"))
        assert len(wavs) == n
        info = soundfile.info(str(wavs[0]))
        assert info.samplerate == rate and info.frames == frames
    return check


sm("audio-out-jpg", "--out", ["--n", "2"], run="audio", out="clips.jpg")
sm("audio-out-wav-file", "--out", ["--n", "2"], run="audio", out="one.wav")
sm("audio-class-out-of-range", "class", ["--n", "2", "--class", "5"], run="audio", out="clips")
sm("audio-sheet", "recordings", ["--n", "2", "--sheet"], run="audio", out="s.png")
sm("audio-class-grid", "recordings", ["--class-grid"], run="audio", out="g.png")
case("arithmetic-on-audio", lambda w, fx: ["arithmetic", fx["audio"], "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8",
                                           "--out", w / "ar"], "error", "recordings")
sm("audio-wav-ok", extra=["--n", "3"], run="audio", out="clips", expect="ok", check=_wavs(3))
sm("audio-class-ok", extra=["--n", "2", "--class", "1"], run="audio", out="clips", expect="ok", check=_wavs(2))


def ip(name, needle="", extra=(), run="audio", expect="error", check=None):
    case(f"interpolate-{name}", lambda w, fx: ["interpolate", fx[run], "--out", w / "walk", *extra], expect, needle,
         check)


def _walk(paths, steps):
    def check(w, fx):
        assert len(list((w / "walk").glob("path-*.wav"))) == paths
        assert len(list((w / "walk" / "path-00").glob("*.wav"))) == steps
    return check


ip("steps-one", "steps", ["--steps", "1"])
ip("paths-zero", "paths", ["--paths", "0"])
ip("too-many", "fewer", ["--paths", "1000", "--steps", "1000"])
ip("class-out-of-range", "class", ["--class", "9"])
ip("ok", extra=["--paths", "2", "--steps", "3"], expect="ok", check=_walk(2, 3))
def _out_is_a_file(w, fx):
    (w / "walk").write_bytes(b"mine")
    return ["interpolate", fx["audio"], "--out", w / "walk"]


case("interpolate-audio-out-is-a-file", _out_is_a_file, "error", "walk")


# ------------------------------------------------------------------------------------------------------------------
# 3. gankit predict: a user's context file


def ctx(name, needle="", arrays=None, extra=(), expect="error", check=None, raw: bytes | None = None):
    def setup(w, fx):
        path = w / "context.npz"
        if raw is not None:
            path.write_bytes(raw)
        elif arrays is not None:
            np.savez(path, **arrays)
        return ["predict", fx["predict"], "--context", path, "--out", w / "out", *extra]
    case(f"predict-{name}", setup, expect, needle, check)


def _futures(n, k, channel=False):
    def check(w, fx):
        f = np.load(w / "out" / "futures.npz")["futures"]
        assert f.shape == (n, k, 2, 16, 16, *((1,) if channel else ())) and f.dtype == np.uint8
    return check


GOOD = np.random.default_rng(0).integers(0, 256, (3, 4, 16, 16), dtype=np.uint8)
PICKLED = np.empty(2, dtype=object)
PICKLED[:] = [GOOD[0], GOOD[1]]

ctx("no-frames-key", "frames", {"images": GOOD})
ctx("frames-2d", "frames", {"frames": GOOD[0, 0]})
ctx("frames-too-few", "context", {"frames": GOOD[:, :1]})
ctx("frames-other-size-resized", "", {"frames": np.zeros((2, 4, 20, 30), np.uint8)}, ["--futures", "1"], "ok",
    _futures(2, 1))
ctx("frames-float", "uint8", {"frames": GOOD.astype(np.float32) / 255})
ctx("frames-zero-sequences", "frames", {"frames": GOOD[:0]})
ctx("frames-wrong-channels", "channel", {"frames": np.zeros((2, 4, 16, 16, 3), np.uint8)})
ctx("frames-pickled-objects", "pickle", {"frames": PICKLED})
ctx("not-an-npz", "npz", raw=b"this is not a zip file")
ctx("pickle-file", "npz", raw=pickle.dumps({"frames": GOOD}))
ctx("empty-file", "npz", raw=b"")
ctx("futures-zero", "futures", {"frames": GOOD}, ["--futures", "0"])
ctx("futures-huge", "futures", {"frames": GOOD}, ["--futures", "100000"])
ctx("n-zero", "--n", {"frames": GOOD}, ["--n", "0"])
ctx("seed-negative", "seed", {"frames": GOOD}, ["--seed", "-1"])
ctx("ok", "", {"frames": GOOD}, ["--futures", "2"], "ok", _futures(3, 2))
ctx("ok-with-channel", "", {"frames": GOOD[..., None]}, ["--futures", "3", "--n", "2"], "ok",
    _futures(2, 3, channel=True))
case("predict-on-an-image-run", lambda w, fx: ["predict", fx["gan"], "--context", "heldout", "--out", w / "out"],
     "error", "predict")
case("predict-heldout-n-too-many", lambda w, fx: ["predict", fx["predict"], "--context", "heldout", "--n", "100000",
                                                  "--futures", "1", "--out", w / "out"], "either")


@pytest.mark.parametrize("c", CASES, ids=CASES.ids)
def test_hostile_case(c, fx, tmp_path, capsys, monkeypatch):
    run_case(c, fx, tmp_path, capsys, monkeypatch)


def test_corpus_size():
    assert len(CASES) >= 60, len(CASES)
