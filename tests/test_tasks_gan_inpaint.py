"""Inpainting with a trained G (Yeh et al. 2017): masks, context weights, the latent search, `gankit inpaint`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
import gankit
from gankit.tasks.gan import inpaint
from gankit.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_masks():
    c = inpaint.make_mask("center", 2, (1, 28, 28))
    assert c.shape == (2, 1, 28, 28) and (c == 0).sum().item() == 2 * 14 * 14
    assert c[0, 0, 7:21, 7:21].sum() == 0 and c[0, 0, 6, :].min() == 1 and c[0, 0, 21, :].min() == 1
    assert (inpaint.make_mask("center", 1, (1, 32, 32)) == 0).sum().item() == 16 * 16
    h = inpaint.make_mask("half", 1, (1, 8, 8))
    assert h[0, 0, :4].min() == 1 and h[0, 0, 4:].max() == 0
    r = inpaint.make_mask("random", 50, (1, 16, 16), seed=0)
    assert 0.75 < (r == 0).float().mean().item() < 0.85
    assert torch.equal(r, inpaint.make_mask("random", 50, (1, 16, 16), seed=0))
    with pytest.raises(UserError, match="unknown mask"):
        inpaint.make_mask("square", 1, (1, 8, 8))


def test_context_weights_follow_yeh():
    m = inpaint.make_mask("center", 1, (1, 16, 16))
    w = inpaint.context_weights(m, 3)
    assert w[m == 0].abs().max() == 0                       # the hole itself never counts
    assert w[0, 0, 0, 0] == 0                               # a corner far from the hole does not either
    assert w[0, 0, 3, 8] > 0                                 # a pixel touching the hole does
    assert w[m == 1].mean().item() == pytest.approx(1.0)     # normalised over the known pixels
    flat = inpaint.context_weights(m, 0)
    assert torch.equal(flat, m)


class _LinearG(torch.nn.Module):
    """A generator whose images are tanh(A z): the search can find the z that made an image."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim = 6, 0
        self.A = torch.nn.Parameter(torch.randn(64, 6) * 0.5, requires_grad=False)

    def forward(self, z, y=None):
        return torch.tanh(z @ self.A.T).view(-1, 1, 8, 8)


def test_search_recovers_what_the_generator_made():
    torch.manual_seed(0)
    G = _LinearG()
    x = G(torch.randn(6, 6)).detach()
    m = inpaint.make_mask("center", 6, (1, 8, 8))
    search = inpaint.Search(candidates=32, restarts=2, steps=150, lr=0.05, window=0)
    completed, fill, found = inpaint.complete(G, None, x * m, m, "normal", search)
    assert found is None and torch.equal(completed * m, x * m)      # known pixels are kept as they were
    ours = inpaint.psnr_on_hole(completed, x, m).mean().item()
    mean = inpaint.psnr_on_hole(inpaint.mean_fill(x, m, x.mean(0)), x, m).mean().item()
    assert ours > 25 and ours > mean + 10


class _ClassG(_LinearG):
    """A conditional generator, tanh(A z + B[y]), that remembers the classes of its last batch."""

    def __init__(self):
        super().__init__()
        self.c_dim = 10
        self.B = torch.nn.Parameter(torch.randn(10, 64) * 2, requires_grad=False)
        self.seen = None

    def forward(self, z, y=None):
        self.seen = y.tolist()
        return torch.tanh(z @ self.A.T + self.B[y]).view(-1, 1, 8, 8)


def test_a_searched_class_is_optimised_for_every_class_and_the_right_one_wins():
    torch.manual_seed(0)
    G = _ClassG()
    truth = torch.tensor([3, 7, 0, 9])
    x = G(torch.randn(4, 6), truth).detach()
    m = inpaint.make_mask("center", 4, (1, 8, 8))
    search = inpaint.Search(candidates=20, restarts=1, steps=100, lr=0.05, window=0)
    _, _, found = inpaint.complete(G, None, x * m, m, "normal", search)
    assert sorted(G.seen) == sorted(list(range(10)) * 4)          # the last pass scored one latent of each class
    assert torch.equal(found, truth)
    _, _, found = inpaint.complete(G, None, x * m, m, "normal", inpaint.Search(candidates=15, restarts=1, steps=1))
    assert sorted(G.seen) == sorted(list(range(10)) * 4)          # 15 candidates: still one of every class
    with pytest.raises(UserError, match="at least 10"):
        inpaint.complete(G, None, x * m, m, "normal", inpaint.Search(candidates=9, restarts=1, steps=1))


def test_nearest_fill_copies_the_closest_training_image():
    train = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    x = torch.full((1, 1, 4, 4), 0.9)
    m = inpaint.make_mask("center", 1, (1, 4, 4))
    out = inpaint.nearest_fill(x, m, train)
    assert torch.equal(out[m.expand_as(out) == 0], torch.ones(4))


def test_mask_file(tmp_path):
    arr = np.full((16, 16), 255, np.uint8)
    arr[:8] = 0
    Image.fromarray(arr).save(tmp_path / "m.png")
    m = inpaint.read_mask(str(tmp_path / "m.png"), 3, (1, 8, 8))
    assert m.shape == (3, 1, 8, 8) and m[:, :, :4].max() == 0 and m[:, :, 4:].min() == 1
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "none.png")
    with pytest.raises(UserError, match="no missing"):
        inpaint.read_mask(str(tmp_path / "none.png"), 1, (1, 8, 8))


def test_inpaint_cli_on_held_out_images(tmp_path, cli):
    code, _, err = cli("train", *TINY, "--steps", "20", "--holdout", "50", "--out", tmp_path, "--name", "g")
    assert code == 0, err
    args = ["--candidates", "4", "--restarts", "2", "--steps", "5", "--n", "20"]
    code, out, err = cli("inpaint", tmp_path / "g", "--images", "heldout", "--mask", "center", "--out",
                         tmp_path / "ip", *args)
    assert code == 0, err
    r = json.loads((tmp_path / "ip" / "results.json").read_text())
    assert set(r["rows"]) == {"masked input", "mean fill", "nearest training image", "G (gankit inpaint)",
                              "originals"}
    # pinned on this tiny seeded run (the same at one and two threads): a change to the search shows here
    assert {k: row["class_acc"] for k, row in r["rows"].items()} == pytest.approx(
        {"masked input": 0.15, "mean fill": 0.2, "nearest training image": 0.85, "G (gankit inpaint)": 0.15,
         "originals": 1.0})
    assert r["rows"]["G (gankit inpaint)"]["psnr_hole"] == pytest.approx(11.1041, rel=1e-4)
    assert r["rows"]["mean fill"]["psnr_hole"] == pytest.approx(11.3640, rel=1e-4)
    assert "| G (gankit inpaint) |" in out and (tmp_path / "ip" / "sheet.png").is_file()
    with np.load(tmp_path / "ip" / "inpainted.npz") as f:
        assert f["images"].shape == (20, 16, 16, 1) and f["masks"].shape == (20, 16, 16)
    assert cli("inpaint", tmp_path / "g", "--images", "heldout", "--out", tmp_path / "ip", *args)[0] == 2
    # from Python: the same search, the same scores
    again = gankit.inpaint(tmp_path / "g", "heldout", "center", tmp_path / "ip-py", n=20, candidates=4, restarts=2,
                           steps=5)
    assert again["rows"]["G (gankit inpaint)"]["class_acc"] == r["rows"]["G (gankit inpaint)"]["class_acc"]

    # user images from a file, no labels: completed, not scored
    np.savez(tmp_path / "x.npz", images=(np.random.default_rng(0).random((3, 16, 16, 1)) * 255).astype(np.uint8))
    code, out, err = cli("inpaint", tmp_path / "g", "--images", tmp_path / "x.npz", "--mask", "random", "--out",
                         tmp_path / "ip2", *args)
    assert code == 0, err
    assert not (tmp_path / "ip2" / "results.json").exists() and (tmp_path / "ip2" / "inpainted.npz").is_file()
    code, _, err = cli("inpaint", tmp_path / "g", "--images", "heldout", "--class", "3", "--out", tmp_path / "ip3",
                       *args)
    assert code == 2 and "conditional" in err


def test_inpaint_conditional_run_finds_or_takes_the_class(tmp_path, cli):
    code, _, err = cli("train", *TINY, "--steps", "10", "--cond", "projection", "--holdout", "20", "--out", tmp_path,
                       "--name", "c")
    assert code == 0, err
    args = ["--candidates", "10", "--restarts", "1", "--steps", "2", "--n", "6"]
    assert cli("inpaint", tmp_path / "c", "--images", "heldout", "--class", "3", "--out", tmp_path / "a", *args)[0] == 0
    with np.load(tmp_path / "a" / "inpainted.npz") as f:
        assert (f["classes_found"] == 3).all()
    assert cli("inpaint", tmp_path / "c", "--images", "heldout", "--out", tmp_path / "b", *args)[0] == 0
    with np.load(tmp_path / "b" / "inpainted.npz") as f:
        assert f["classes_found"].shape == (6,) and ((0 <= f["classes_found"]) & (f["classes_found"] < 10)).all()
