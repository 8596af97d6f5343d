"""Folder data as the model is shown it: the resize policy, the one-line summary, reals.png, and x-flip."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from gankit import data
from gankit.data.folder import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _wide(tmp_path):
    """One 40x20 image: left half red, right half blue, a green column at x = 0."""
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))
    im.paste((0, 255, 0), (0, 0, 1, 20))
    im.save(tmp_path / "wide.png")
    return tmp_path


@pytest.mark.parametrize("policy", ["crop", "pad", "stretch"])
def test_resize_policies(tmp_path, policy):
    x = data.load(f"folder:{_wide(tmp_path)}", img_size=10, resize=policy).x[0]    # (3, 10, 10) uint8
    assert x.shape == (3, 10, 10)
    if policy == "crop":        # the centre 20x20 of the 40x20 image, scaled: red left, blue right, no green edge
        assert x[0, :, 1].min() > 200 and x[2, :, 8].min() > 200 and x[1].max() < 30
    if policy == "pad":         # the whole image in rows 2.5..7.5, black above and below
        assert x[:, 0].max() == 0 and x[:, 9].max() == 0 and x[1, 3:7, 0].max() > 30
        assert x[0, 3:7, 2].min() > 200 and x[2, 3:7, 8].min() > 200
    if policy == "stretch":     # every row holds the whole width, green edge included
        assert x[1, :, 0].min() > 30 and x[0, :, 3].min() > 200 and x[2, :, 8].min() > 200


def test_fit_leaves_an_image_of_the_right_size_alone():
    x = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    for policy in ("crop", "pad", "stretch"):
        assert torch.equal(fit(x, 8, policy), x)


def test_summary_line_says_what_was_read_and_done(tmp_path, caplog):
    for cls, sizes in (("cats", [(40, 20), (16, 16)]), ("dogs", [(8, 8)])):
        (tmp_path / cls).mkdir()
        for i, wh in enumerate(sizes):
            Image.new("RGB", wh, (9, 9, 9)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "bad.png").write_bytes(b"not an image")
    with caplog.at_level(logging.INFO, logger="gankit"):
        data.load(f"folder:{tmp_path}", img_size=16, resize="crop")
    (line,) = [r.getMessage() for r in caplog.records if "images read" in r.getMessage()]
    assert "3 images read, 1 unreadable skipped" in line
    assert "2 classes (cats 2, dogs 1)" in line and "sizes 8x8 to 40x20" in line
    assert "1 not square, 1 smaller than 16 px (enlarged)" in line and "50% of each non-square image cut" in line


def test_reals_grid_and_xflip_in_the_run(tmp_path, cli):
    (tmp_path / "imgs").mkdir()
    folder = _wide(tmp_path / "imgs")
    for i in range(15):
        Image.open(folder / "wide.png").save(folder / f"copy{i}.png")
    code, _, err = cli("train", *TINY, "--data", f"folder:{folder}", "--steps", 1, "--xflip", "--out", tmp_path,
                       "--name", "r", "--grid_n", 16)
    assert code == 0, err
    reals = torch.tensor(np.asarray(Image.open(tmp_path / "r" / "reals.png")))   # (H, W, 3)
    # a 4x4 grid of 16 px images with 2 px padding; some cells mirrored (blue left), some not (red left)
    cells = [reals[2 + 18 * r: 18 + 18 * r, 2 + 18 * c: 18 + 18 * c] for r in range(4) for c in range(4)]
    left_red = [bool(cell[:, 2, 0].float().mean() > 200) for cell in cells]
    assert 0 < sum(left_red) < 16


def test_xflip_draws_each_image_and_its_mirror_once_per_epoch():
    from gankit import distributed
    from gankit.data import Dataset
    from gankit.data.stream import Draw

    x = torch.arange(6 * 4, dtype=torch.uint8).view(6, 1, 1, 4) * 10            # 6 images of 1 x 4 pixels
    draw = Draw(Dataset("t", x), 4, seed=3, ctx=distributed.Context(), device="cpu", xflip=True)
    seen = torch.cat([draw(k)[0] for k in range(3)])                               # one epoch: 12 = 2 x 6
    want = torch.cat([x, x.flip(-1)]).float().div(127.5).sub(1)
    assert sorted(map(tuple, seen.view(12, 4).tolist())) == sorted(map(tuple, want.view(12, 4).tolist()))
