"""Recordings: reading (resampling, cropping and padding, unreadable files), WaveGAN's phase shuffle, SpecGAN's
spectrograms and Griffin-Lim, training both from the CLI, and the .wav files `gankit sample` writes."""

import logging

import numpy as np
import pytest
import soundfile
import torch

from gankit import audio, config, data, models
from gankit.data import audio as audio_data
from gankit.errors import ConfigError, UserError
from gankit.models import specgan, wavegan

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")
FSDD = REPO.parent / "shared" / "data" / "fsdd"
TINY = ["--sample_rate", "8000", "--audio_length", "1024", "--z_dim", "8", "--g_width", "4", "--d_width", "4",
        "--batch_size", "6", "--log_every", "1", "--sample_every", "2", "--ckpt_every", "0", "--no-progress"]


def tone(path, freq: float, seconds: float, rate: int, amplitude: float = 0.5, subtype: str = "PCM_16"):
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Three classes of sine tones (300, 600, 900 Hz), 6 clips each, 0.2 s at 8 kHz."""
    root = tmp_path_factory.mktemp("tones")
    for c, freq in enumerate((300, 600, 900)):
        for i in range(6):
            tone(root / f"tone{c}" / f"{i}.wav", freq * (1 + 0.01 * i), 0.2, 8000)
    return root


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


# ---------------------------------------------------------------------------------------------------------------
# reading


def test_a_tone_keeps_its_frequency_when_resampled(tmp_path):
    """A 1 kHz tone recorded at 16 kHz, read into an 8 kHz run: still 1 kHz (a reader that ignored the file's rate
    would hear 2 kHz), and half as many samples."""
    tone(tmp_path / "a" / "t.wav", 1000, 0.5, 16000)
    ds = audio_data.load_folder(str(tmp_path / "a"), 8000, 4096)
    assert ds.sample_rate == 8000 and ds.x.shape == (1, 1, 4096)
    wave = ds.x[0, 0].numpy()
    assert abs(peak_hz(wave[wave != 0], 8000) - 1000) < 10
    assert np.count_nonzero(wave) == pytest.approx(4000, abs=2)          # 0.5 s at 8 kHz, centred in zeros


def test_crop_and_pad_are_counted_in_the_summary(tmp_path, caplog):
    for i, seconds in enumerate((0.05, 0.1, 0.3)):                        # 400, 800, 2400 samples at 8 kHz
        tone(tmp_path / "s" / f"{i}.wav", 500, seconds, 8000)
    with caplog.at_level(logging.INFO, logger="gankit"):
        ds = audio_data.load_folder(str(tmp_path / "s"), 8000, 1024)
    line = caplog.text
    assert "3 clips read" in line and "1 cropped" in line and "2 padded" in line
    assert "(by 0.17 s on average)" in line                              # 2400 - 1024 = 1376 samples = 0.17 s
    assert ds.x.shape == (3, 1, 1024) and ds.y is None


def test_the_loudest_window_is_kept_when_cropping():
    wave = np.zeros(3000, np.float32)
    wave[2000:2100] = 1.0
    out = audio_data.fit_length(wave, 500)
    assert len(out) == 500 and out.sum() == 100


def test_unreadable_files_are_skipped_counted_and_named(tmp_path, caplog):
    tone(tmp_path / "f" / "good.wav", 500, 0.1, 8000)
    (tmp_path / "f" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "f" / "empty.wav").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="gankit"):
        ds = audio_data.load_folder(str(tmp_path / "f"), 8000, 1024)
    assert len(ds) == 1
    assert "2 unreadable skipped (broken.wav, empty.wav)" in caplog.text
    (tmp_path / "f" / "good.wav").unlink()
    with pytest.raises(UserError, match="none of the 2 sound files"):
        audio_data.load_folder(str(tmp_path / "f"), 8000, 1024)


def test_amplitudes_beyond_one_are_scaled_down_and_said(tmp_path, caplog):
    tone(tmp_path / "l" / "loud.wav", 500, 0.1, 8000, amplitude=2.0, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="gankit"):
        ds = audio_data.load_folder(str(tmp_path / "l"), 8000, 1024)
    assert ds.x.abs().max().item() == pytest.approx(1.0, abs=1e-4)
    assert "1 exceeded [-1, 1] (peak up to 2)" in caplog.text


def test_sub_folders_are_classes(tones):
    ds = data.load(f"audio:{tones}", sample_rate=8000, audio_length=1024)
    assert ds.class_names == ["tone0", "tone1", "tone2"] and ds.y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert ds.is_audio and not ds.is_points and ds.shape == (1, 1024)


def test_missing_folder_and_fsdd_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        data.load(f"audio:{tmp_path / 'none'}")
    with pytest.raises(UserError, match="fsdd not found"):
        data.load("fsdd", str(tmp_path))


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason="FSDD not at ../shared/data/fsdd")
def test_fsdd_holds_its_test_split_out():
    ds = data.load("fsdd", str(FSDD), sample_rate=8000, audio_length=1024)
    assert len(ds) == 2700 and len(ds.test) == 300 and ds.reference() is ds.test
    assert torch.bincount(ds.test.y).tolist() == [30] * 10


def test_config_refuses_what_audio_cannot_do():
    with pytest.raises(ConfigError, match="audio_length"):
        config.load(None, {"data": "fsdd", "model": "wavegan", "audio_length": 4000})
    with pytest.raises(ConfigError, match="audio_length"):
        config.load(None, {"data": "fsdd", "model": "specgan", "img_size": 32, "audio_length": 4096})
    with pytest.raises(ConfigError, match="^model"):
        config.load(None, {"data": "fsdd", "model": "dcgan"})
    with pytest.raises(ConfigError, match="^model"):
        config.load(None, {"data": "digits", "model": "wavegan"})
    with pytest.raises(ConfigError, match="^sample_rate"):
        config.load(None, {"data": "fsdd", "model": "wavegan", "sample_rate": 10})


# ---------------------------------------------------------------------------------------------------------------
# models


def test_phase_shuffle_shifts_each_example_by_at_most_n_with_reflection():
    torch.manual_seed(0)
    x = torch.randn(200, 3, 16)
    out = wavegan.phase_shuffle(x, 2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2), mode="reflect")
    shifts = []
    for i in range(len(x)):
        match = [k for k in range(-2, 3) if torch.equal(out[i], padded[i, :, 2 - k: 2 - k + 16])]
        assert len(match) == 1                                   # every row is its input shifted by k in -2..2
        shifts.append(match[0])
    assert set(shifts) == {-2, -1, 0, 1, 2}                      # each shift occurs: not the identity
    assert torch.equal(wavegan.PhaseShuffle(2).eval()(x), x)     # D in eval mode is deterministic


def test_wavegan_shapes_and_its_d_shuffles_phase():
    G = wavegan.Generator(z_dim=8, audio_length=1024, width=4, sample_rate=8000)
    D = wavegan.Discriminator(audio_length=1024, width=4)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 1, 1024) and x.abs().max() <= 1
    assert sum(isinstance(m, wavegan.PhaseShuffle) for m in D.modules()) == 4
    assert D(x).shape == (3,)
    G2 = models.generator_from_spec(G.spec)
    assert G2.sample_rate == 8000 and G2.state_dict().keys() == G.state_dict().keys()


def test_wavegan_d_starts_able_to_see_its_input():
    """D's logits on noise vary with the input from the start: with DCGAN's N(0, 0.02) they were about 1e-4 in
    spread (a blind D that stayed at D(x) = D(G(z)) = 0.5 for a whole run)."""
    torch.manual_seed(0)
    D = wavegan.Discriminator(audio_length=4096, width=16).eval()
    assert D(torch.randn(64, 1, 4096) * 0.1).std() > 1e-3
    G = wavegan.Generator(z_dim=64, audio_length=4096, width=16, c_dim=10)
    assert G.embed.weight.std() > 0.5                           # a label is as loud as z in G's input


def test_specgan_spectrogram_inverts_to_the_same_sound():
    """A 1 kHz tone through the spectrogram and Griffin-Lim: the same frequency, and nearly the same spectrogram."""
    spec = specgan.Spectrogram(64, 4096)
    t = torch.arange(4096) / 8000
    wave = 0.5 * torch.sin(2 * torch.pi * 1000 * t)
    image = spec(wave[None])
    assert image.shape == (1, 1, 64, 64) and image.min() >= -1 and image.max() <= 1
    assert image[0, 0, :, 30].argmax().item() == 16              # 1 kHz is bin 16 of 64 up to 4 kHz
    back = spec.invert(image)
    assert back.shape == (1, 4096)
    assert abs(peak_hz(back[0].numpy(), 8000) - 1000) < 20
    again, loud = spec(back), image > 0                           # loud: above -40 dB
    assert (again - image)[loud].abs().mean() < 0.05                # within 2 dB where the tone is
    assert again[~loud].mean() < -0.7                               # and silence stays near silence


def test_a_conditional_run_s_labels_reach_g():
    cfg = config.load(None, {"data": "fsdd", "model": "wavegan", "cond": "concat", "c_dim": 3, "audio_length": 1024,
                             "z_dim": 8, "g_width": 4, "d_width": 4, "g_norm": "none"})
    for name in ("wavegan", "specgan"):
        cfg2 = config.checked(cfg, model=name, img_size=32)
        G, D = models.build(cfg2, (1, 1024))
        z = torch.randn(1, 8).repeat(3, 1)
        x = G(z, torch.tensor([0, 1, 2]))
        assert not torch.allclose(x[0], x[1]) and not torch.allclose(x[1], x[2])   # same z, other digit
        with pytest.raises(ValueError, match="conditional"):
            G(z)


# ---------------------------------------------------------------------------------------------------------------
# training and sampling from the CLI


@pytest.mark.parametrize("model,extra", [("wavegan", []), ("specgan", ["--img_size", "32"])])
def test_two_steps_of_training_then_wav_files(model, extra, tones, tmp_path, cli):
    code, out, err = cli("train", "--data", f"audio:{tones}", "--model", model, *TINY, *extra, "--steps", "2",
                         "--cond", "concat", "--out", tmp_path / "runs", "--name", model)
    assert code == 0, err
    run = tmp_path / "runs" / model
    assert (run / "samples" / "step-0000002.png").is_file() and (run / "reals.png").is_file()
    assert list((run / "tb").iterdir())
    code, out, err = cli("sample", run, "--n", "3", "--class", "2", "--out", tmp_path / "clips")
    assert code == 0, err
    wavs = sorted((tmp_path / "clips").glob("*.wav"))
    assert [w.name for w in wavs] == ["00000_class2.wav", "00001_class2.wav", "00002_class2.wav"]
    info = soundfile.info(str(wavs[0]))
    assert info.samplerate == 8000 and info.frames == 1024 and info.subtype == "PCM_16"
    code, out, err = cli("sample", run, "--n", "3", "--out", tmp_path / "clips.npz")
    assert code == 0, err
    saved = np.load(tmp_path / "clips.npz")
    assert saved["audio"].shape == (3, 1024) and saved["audio"].dtype == np.float32
    assert int(saved["sample_rate"]) == 8000 and np.abs(saved["audio"]).max() <= 1
    code, out, err = cli("sample", run, "--n", "3", "--class", "2", "--out", tmp_path / "clips")
    assert code != 0 and "exists" in err                               # nothing is overwritten


def test_sheet_and_wav_helpers(tmp_path):
    waves = torch.rand(5, 800) * 2 - 1
    path = audio.save_sheet(waves, 8000, tmp_path / "s.png", ["a"] * 5)
    assert path.stat().st_size > 1000
    audio.write_wav(tmp_path / "w.wav", waves[0].numpy(), 8000)
    back, rate = soundfile.read(str(tmp_path / "w.wav"), dtype="float32")
    assert rate == 8000 and np.abs(back - waves[0].numpy()).max() < 1e-4


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason="FSDD not at ../shared/data/fsdd")
def test_audio_metrics_tell_an_untrained_g_from_the_real_floor():
    from gankit import metrics
    from gankit.sample import Sampler

    ds = data.load("fsdd", str(FSDD), sample_rate=8000, audio_length=4096)
    torch.manual_seed(0)
    G = wavegan.Generator(z_dim=8, audio_length=4096, width=4, sample_rate=8000).eval()
    ctx = metrics.EvalContext(Sampler(G, "normal", ds.class_names), ds, n=100)
    assert ctx.kind == "audio"
    res = metrics.evaluate(["audio_is", "audio_fd", "audio_recognisable"], ctx)
    assert res["n_samples"] == 100 and res["classifier_acc"] > 0.95
    assert res["is_floor"] > 4 > res["is"] >= 1
    assert res["recognisable_floor"] > 0.5
    # noise from an untrained G can be heard confidently as one digit (recognisable near the floor): the class KL
    # is what tells it, every clip falling in the same class (log 10 = 2.3 at most)
    assert res["class_kl"] > 1 and res["class_kl"] > 20 * res["class_kl_floor"]
    assert res["fd"] > 10 * res["fd_floor"]


def test_the_report_plays_the_latest_clips_and_interpolation_is_heard(tones, tmp_path, cli):
    code, out, err = cli("train", "--data", f"audio:{tones}", "--model", "specgan", *TINY, "--img_size", "32",
                         "--steps", "4", "--cond", "concat", "--out", tmp_path / "runs", "--name", "r")
    assert code == 0, err
    run = tmp_path / "runs" / "r"
    latest = run / "samples" / "clips" / "step-0000004"
    wavs = sorted(latest.glob("*.wav"))
    assert len(wavs) == audio.TB_CLIPS and all(w.with_suffix(".png").is_file() for w in wavs)
    info = soundfile.info(str(wavs[0]))
    assert info.samplerate == 8000 and info.frames == 1024
    code, out, err = cli("report", run)
    assert code == 0, err
    page = (run / "report.html").read_text()
    players = page.count("<audio controls")
    assert players == audio.TB_CLIPS and "step 4" in page.split("<h2>Listen</h2>")[1]
    assert "data:audio/wav;base64," + __import__("base64").b64encode(wavs[0].read_bytes()).decode() in page
    assert "<figcaption>tone0</figcaption>" in page                   # each clip titled by the class it was asked

    code, out, err = cli("interpolate", run, "--paths", "2", "--steps", "3", "--out", tmp_path / "walk")
    assert code == 0, err
    walk = tmp_path / "walk"
    steps = [soundfile.read(str(walk / "path-01" / f"{s:02d}.wav"), dtype="float32") for s in range(3)]
    assert all(rate == 8000 and len(w) == 1024 for w, rate in steps)
    assert not np.allclose(steps[0][0], steps[2][0], atol=1e-3)          # the endpoints are different sounds
    joined, rate = soundfile.read(str(walk / "path-01.wav"), dtype="float32")
    gap = int(audio.GAP_S * 8000)
    assert len(joined) == 3 * (1024 + gap) and np.allclose(joined[1024 + gap: 2 * 1024 + gap], steps[1][0], atol=1e-4)
    saved = np.load(walk / "interpolation.npz")
    assert saved["audio"].shape == (3, 2, 1024) and saved["z"].shape == (3, 2, 8) and int(saved["sample_rate"]) == 8000
    assert (walk / "interpolation.png").stat().st_size > 1000
