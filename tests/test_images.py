"""Decoding one image file (gankit.data.decode.open_image) and its use by folder data sets."""

import io
import logging
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from gankit import data
from gankit.config import background_rgb
from gankit.data import decode
from gankit.data.decode import SkippedImage, open_image


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    notes = Counter()
    got = np.asarray(open_image(tmp_path / "g16.png", "L", notes=notes))
    assert got.dtype == np.uint8 and got.min() == 0 and got.max() == 255
    assert np.abs(got.astype(int) - np.round(ramp / 257).astype(int)).max() == 0   # 65535 -> 255, linear
    assert (got == 255).sum() == 1 and notes["16-bit"] == 1          # clipping would make most pixels white


@pytest.mark.parametrize("background,want", [((255, 255, 255), 255), ((0, 0, 0), 0)])
def test_transparency_is_composited_onto_the_background(tmp_path, background, want):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200                      # red where opaque
    rgba[:2, :, 3] = 255                    # top half opaque, bottom half fully transparent (stored colour red)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = np.asarray(open_image(tmp_path / "a.png", "RGB", background))
    assert (got[:2] == [200, 0, 0]).all() and (got[2:] == want).all()
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    assert (np.asarray(open_image(tmp_path / "la.png", "L", background))[2:] == want).all()


def test_palette_transparency_and_half_alpha(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png", transparency=0)     # palette index 0 (blue) is transparent
    got = np.asarray(open_image(tmp_path / "p.png", "RGB", (0, 255, 0)))
    assert got[0, 0].tolist() == [0, 255, 0] and got[0, 1].tolist() == [255, 0, 0]
    Image.new("RGBA", (2, 2), (0, 0, 0, 128)).save(tmp_path / "half.png")
    assert abs(int(np.asarray(open_image(tmp_path / "half.png", "L"))[0, 0]) - 127) <= 1   # black at 50% on white


def test_cmyk_becomes_rgb(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    notes = Counter()
    got = np.asarray(open_image(tmp_path / "c.jpg", "RGB", notes=notes)).astype(int)
    assert got.shape == (4, 4, 3) and notes["cmyk"] == 1
    assert (got[..., 0] > 240).all() and (got[..., 1:] < 15).all()        # magenta + yellow = red


def test_animated_files_use_their_first_frame(tmp_path):
    frames = [Image.new("L", (4, 4), v) for v in (10, 240, 120)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    notes = Counter()
    got = np.asarray(open_image(tmp_path / "a.gif", "L", notes=notes))
    assert abs(int(got.mean()) - 10) <= 2 and notes["animated"] == 1


def test_huge_files_are_skipped_by_name_before_decoding(tmp_path, monkeypatch, caplog):
    Image.new("L", (64, 64), 0).save(tmp_path / "big.png")
    Image.new("L", (8, 8), 0).save(tmp_path / "small.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    with pytest.raises(SkippedImage, match="64x64 is over 1,000 pixels"):
        open_image(tmp_path / "big.png", "L")
    with caplog.at_level(logging.WARNING, logger="gankit"):
        ds = data.load(f"folder:{tmp_path}", img_size=16, channels=1)
    assert len(ds) == 1 and "big.png: 64x64 is over" in caplog.text


def test_out_of_range_float_images_are_skipped_not_guessed(tmp_path):
    Image.fromarray(np.full((4, 4), 1e6, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(SkippedImage, match="outside the ranges"):
        open_image(tmp_path / "f.tif", "L")
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "h.tif")
    assert np.asarray(open_image(tmp_path / "h.tif", "L"))[0, 0] in (127, 128)


def test_background_is_a_config_field(tmp_path, cli):
    for i in range(16):
        Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp_path / f"{i}.png")    # fully transparent
    for bg, want in (("black", 0), ("#ff0000", 255)):
        ds = data.load(f"folder:{tmp_path}", img_size=16, background=background_rgb(bg))
        assert int(ds.x[:, 0].float().mean()) == want
    code, out, _ = cli("train", "--data", f"folder:{tmp_path}", "--background", "gray", "--dry-run")
    assert code == 0 and "background: gray" in out
    code, _, err = cli("train", *TINY, "--background", "mauve")
    assert code == 2 and "background" in err
