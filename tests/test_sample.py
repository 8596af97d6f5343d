"""gankit.sample: the Sampler (seeded draws, the class grid, labels, truncation), load_sampler on a run folder, a
checkpoint of a chosen step and an export, the device check, and the files save_samples writes."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from gankit import checkpoint, viz
from gankit.cli import main
from gankit.errors import UserError
from gankit.sample import Sampler, check_device, load_sampler, sample_paths, save_samples

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """A tiny conditional DCGAN (10 classes, 16 px) that keeps an averaged G, with checkpoints at steps 5 and 10."""
    out = tmp_path_factory.mktemp("sample")
    assert main(["train", *TINY, "--steps", "10", "--ckpt_every", "5", "--cond", "concat", "--ema_decay", "0.9",
                 "--out", str(out), "--name", "c"]) == 0
    return out / "c"


@pytest.fixture(scope="module")
def sampler(run):
    return load_sampler(run)


class Probe(torch.nn.Module):
    """A 'generator' whose output is its input: (n, z_dim + 1) = [z, label], so a test can see what G was given."""

    def __init__(self, z_dim=4, c_dim=3):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.zero = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z, y=None):
        y = torch.full((z.shape[0],), -1) if y is None else y
        return torch.cat([z, y.float()[:, None]], 1) + self.zero


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(sampler):
    torch.manual_seed(1)
    x1, y1 = sampler(6, generator=gen(0))
    torch.manual_seed(2)                                            # the global RNG plays no part
    x2, y2 = sampler(6, generator=gen(0))
    x3, y3 = sampler(6, generator=gen(1))
    assert x1.shape == (6, 1, 16, 16) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert (x1 - x3).abs().amax(dim=(1, 2, 3)).min() > 1e-3        # every image differs
    assert not torch.equal(y1, y3)


def test_class_grid_rows_are_classes_and_columns_share_z():
    s = Sampler(Probe(z_dim=4, c_dim=3), "normal")
    grid = s.class_grid(5, gen(0))                                  # (3 * 5, 4 + 1): [z, label]
    assert grid[:, -1].tolist() == [0.0] * 5 + [1.0] * 5 + [2.0] * 5
    z = grid[:, :-1].view(3, 5, 4)
    assert torch.equal(z[0], s.z(5, gen(0))) and torch.equal(z[1], z[0]) and torch.equal(z[2], z[0])
    assert torch.unique(z[0], dim=0).shape[0] == 5                 # the columns themselves differ


def test_class_grid_of_a_trained_conditional_model(sampler):
    grid = sampler.class_grid(2, gen(3))
    z = sampler.z(2, gen(3))
    for k in (0, 9):
        assert torch.allclose(grid[2 * k: 2 * k + 2], sampler.decode(z, torch.full((2,), k)), atol=1e-6)
    assert (grid[0:2] - grid[18:20]).abs().max() > 1e-5            # the label changes the image (a little, at step 10)


def test_labels_refuse_a_class_out_of_range_or_without_classes(sampler):
    assert sampler.labels(4, cls=9).tolist() == [9] * 4
    for cls in (10, -1):
        with pytest.raises(UserError) as e:
            sampler.labels(4, cls=cls)
        assert len(str(e.value).splitlines()) == 1 and "0..9" in str(e.value) and str(cls) in str(e.value)
    plain = Sampler(Probe(c_dim=0), "normal")
    assert plain.labels(4) is None
    for call in (lambda: plain.labels(4, cls=0), lambda: plain.class_grid(2)):
        with pytest.raises(UserError) as e:
            call()
        assert len(str(e.value).splitlines()) == 1 and "conditional" in str(e.value)


def test_truncation_shrinks_z_for_a_normal_prior_and_not_on_the_sphere():
    normal = Sampler(Probe(z_dim=16), "normal")
    full, half = normal.z(8, gen(0)).norm(dim=1), normal.z(8, gen(0), truncation=0.5).norm(dim=1)
    assert torch.allclose(half, 0.5 * full)
    sphere = Sampler(Probe(z_dim=16), "sphere")
    assert torch.allclose(sphere.z(8, gen(0), truncation=0.5).norm(dim=1), torch.full((8,), 4.0))   # sqrt(16)


def test_a_run_folder_gives_its_averaged_generator(run, sampler):
    saved = checkpoint.read(run)
    assert saved.has_ema and sampler.meta["ema"] and sampler.meta["step"] == 10
    z, y = torch.randn(4, 8), torch.arange(4)
    with torch.no_grad():
        ema, raw = saved.generator()(z, y), saved.generator(ema=False)(z, y)
    assert torch.equal(sampler.decode(z, y), ema)
    assert (ema - raw).abs().max() > 1e-4                           # G_ema is not G
    assert not sampler.G.training


def test_a_chosen_checkpoint_gives_that_steps_generator(run, sampler, tmp_path, cli):
    z, y = torch.randn(4, 8), torch.arange(4)
    with torch.no_grad():
        want = checkpoint.read(run, 5).generator()(z, y)
    by_step, by_file = load_sampler(run, step=5), load_sampler(run / "checkpoints" / "step-0000005.pt")
    assert by_step.meta["step"] == by_file.meta["step"] == 5
    assert torch.equal(by_step.decode(z, y), want) and torch.equal(by_file.decode(z, y), want)
    assert (want - sampler.decode(z, y)).abs().max() > 1e-4         # step 5 is not step 10
    code, _, err = cli("sample", run, "--checkpoint", 5, "--n", 4, "--seed", 7, "--out", tmp_path / "s.npz")
    assert code == 0, err
    x, labels = by_step(4, generator=gen(7))
    saved = np.load(tmp_path / "s.npz")
    assert np.array_equal(saved["images"], viz.to_uint8(x)) and saved["labels"].tolist() == labels.tolist()


def test_an_export_gives_the_same_images_as_its_run(run, sampler, tmp_path, cli):
    code, _, err = cli("export", run, "--out", tmp_path / "exp")
    assert code == 0, err
    exported = load_sampler(tmp_path / "exp")
    assert exported.prior == sampler.prior and exported.class_names == sampler.class_names
    (x1, y1), (x2, y2) = exported(6, generator=gen(4)), sampler(6, generator=gen(4))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize("name,needle", [("cuda:7", "torch sees"), ("gpu", "not one of cpu, cuda, cuda:N"),
                                         ("cuda:x", "not one of")])
def test_check_device_refuses_a_device_this_machine_lacks(name, needle):
    assert check_device("cpu") == "cpu"
    with pytest.raises(UserError, match=needle):
        check_device(name)


def test_an_npz_holds_uint8_images_and_labels_and_is_not_overwritten(sampler, tmp_path):
    x, labels = sampler(5, generator=gen(0))
    out = save_samples(sampler, x, labels, tmp_path / "s.npz")
    saved = np.load(out)
    assert saved["images"].dtype == np.uint8 and saved["images"].shape == (5, 16, 16, 1)
    back = torch.from_numpy(saved["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert (back - x).abs().max() <= 0.5 / 127.5 + 1e-6            # the images, rounded to 8 bits
    assert saved["labels"].dtype == np.int64 and saved["labels"].tolist() == labels.tolist()
    out.write_bytes(b"the user's file")
    with pytest.raises(UserError, match="pass --force"):
        save_samples(sampler, x, labels, out)
    assert out.read_bytes() == b"the user's file"
    save_samples(sampler, x, labels, out, force=True)
    assert np.array_equal(np.load(out)["images"], saved["images"])


def test_a_folder_gets_one_png_per_image(sampler, tmp_path):
    x, labels = sampler(3, labels=torch.tensor([4, 0, 4]), generator=gen(0))
    out = tmp_path / "dir"
    assert sample_paths(sampler, 3, labels, out) == [out / "00000_class4.png", out / "00001_class0.png",
                                                     out / "00002_class4.png"]
    save_samples(sampler, x, labels, out)
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["00000_class4.png", "00001_class0.png", "00002_class4.png"]
    images = viz.to_uint8(x)
    for i, p in enumerate(files):
        assert np.array_equal(np.asarray(Image.open(p)), images[i][..., 0])
    assert sample_paths(sampler, 2, None, out) == [out / "00000.png", out / "00001.png"]
    with pytest.raises(UserError, match="must end in .npz or .png"):
        sample_paths(sampler, 2, None, tmp_path / "s.jpg")
