import logging

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import data
from gankit.data.images import read_idx
from gankit.errors import UserError


def test_digits_embedded():
    ds = data.load("digits", img_size=16)
    assert ds.x.shape == (1797, 1, 16, 16) and ds.y.shape == (1797,)
    assert ds.x.dtype == torch.uint8 and ds.x.max() > 230  # stored as image files hold them
    x = ds.floats()
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() <= 1 and x.max() > 0.8
    assert ds.num_classes == 10 and set(ds.y.tolist()) == set(range(10))


def _folder(tmp_path, n=3, corrupt=1):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls / "deeper").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 30), colour).save(tmp_path / cls / "deeper" / f"{i}.png")
    for i in range(corrupt):
        (tmp_path / "dogs" / f"broken{i}.jpg").write_bytes(b"not an image at all")
    return tmp_path


def test_folder_labels_resize_and_corrupt_files(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gankit"):
        ds = data.load(f"folder:{_folder(tmp_path, corrupt=2)}", img_size=16)
    assert ds.x.shape == (6, 3, 16, 16)
    assert ds.class_names == ["cats", "dogs"] and sorted(ds.y.tolist()) == [0, 0, 0, 1, 1, 1]
    cats = ds.batch(torch.nonzero(ds.y == 0).flatten())
    assert torch.equal(cats[:, 0], torch.ones_like(cats[:, 0]))   # red channel of red images
    assert torch.equal(cats[:, 2], -torch.ones_like(cats[:, 2]))  # no blue
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 2 unreadable" in warnings[0]


def test_folder_grayscale_flag(tmp_path):
    ds = data.load(f"folder:{_folder(tmp_path, corrupt=0)}", img_size=16, channels=1)
    assert ds.x.shape == (6, 1, 16, 16)


def test_folder_without_subfolders_has_no_labels(tmp_path):
    for i in range(2):
        Image.new("L", (20, 20), 128).save(tmp_path / f"{i}.png")
    ds = data.load(f"folder:{tmp_path}", img_size=16)
    assert ds.y is None and ds.num_classes == 0


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no images"):
        data.load(f"folder:{tmp_path}")
    with pytest.raises(UserError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'nope'}")


def test_mnist_idx_from_shared(mnist_dir):
    ds = data.load("mnist", str(mnist_dir), img_size=32)
    assert ds.x.shape == (10000, 1, 32, 32) and ds.num_classes == 10
    counts = torch.bincount(ds.y, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # data README's class counts
    raw = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8


def test_idx_reader_rejects_truncated_file(tmp_path):
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(bytes([0, 0, 8, 3]) + np.array([5, 28, 28], ">i4").tobytes() + b"\0" * 100)
    with pytest.raises(UserError, match="truncated"):
        read_idx(f)


@pytest.mark.parametrize("name,files", [("mnist", "train-images-idx3-ubyte.gz"),
                                        ("fashion-mnist", "train-labels-idx1-ubyte.gz"),
                                        ("cifar10", "cifar-10-python.tar.gz")])
def test_offline_and_missing_says_which_files_where(tmp_path, name, files):
    with pytest.raises(UserError) as e:
        data.load(name, str(tmp_path))
    assert files in str(e.value) and str(tmp_path) in str(e.value)


def test_fake_images_need_no_file():
    ds = data.load("fake", img_size=16, channels=3, n_points=40)
    assert ds.x.shape == (40, 3, 16, 16) and ds.x.dtype == torch.uint8 and ds.y is None
    assert torch.equal(ds.x, data.load("fake", img_size=16, channels=3, n_points=40).x)  # seed-fixed


def test_rings_and_grid():
    ring, grid = data.load("ring", n_points=1000), data.load("grid", n_points=1000)
    assert ring.x.shape == (1000, 2) and ring.modes.shape == (8, 2) and ring.sigma == 0.01
    assert torch.allclose(ring.modes.norm(dim=1), torch.ones(8))
    assert grid.modes.shape == (25, 2) and grid.y is None
    assert set(grid.modes[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
