"""Interpolation, the numbered sheet, vector arithmetic and truncation (gankit.explore, gankit.latent)."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from gankit import explore, latent, viz
from gankit.cli import main
from gankit.errors import UserError
from gankit.models import dcgan
from gankit.sample import Sampler, load_sampler


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny trained run shared by this file's CLI tests (4 steps: what is tested is the plumbing, not G)."""
    out = tmp_path_factory.mktemp("explore")
    assert main(["train", *TINY, "--steps", "4", "--out", str(out), "--name", "tiny"]) == 0
    return out / "tiny"


def _sampler(prior="normal", c_dim=0, norm="batch", seed=0) -> Sampler:
    """An untrained tiny DCGAN G (z_dim 8, 16x16 grey): G's outputs depend on z, which is all these tests need."""
    torch.manual_seed(seed)
    G = dcgan.Generator(z_dim=8, img_size=16, channels=1, width=8, norm=norm, c_dim=c_dim, vbn_ref_size=4)
    if norm == "virtual_batch":
        G.set_reference(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))
    return Sampler(G.eval(), prior, [str(i) for i in range(c_dim)])


def _draw(s: Sampler, n: int, seed: int, psi: float = 1.0, times: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [s.z(n, gen, psi) for _ in range(times)]


# ------------------------------------------------------------------------------------------------------------------
# interpolation


@pytest.mark.parametrize("path_fn", [latent.slerp, latent.lerp])
def test_slerp_and_lerp_endpoints_are_the_inputs(path_fn):
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    z = path_fn(a, b, torch.tensor([0.0, 0.3, 1.0]))                       # (3, 5, 8)
    assert z.shape == (3, 5, 8)
    assert torch.allclose(z[0], a, atol=1e-5) and torch.allclose(z[-1], b, atol=1e-5)
    assert not torch.allclose(z[1], a, atol=1e-3) and not torch.allclose(z[1], b, atol=1e-3)


@pytest.mark.parametrize("prior", ["normal", "sphere", "uniform"])
def test_interpolation_endpoints_and_path_kind(prior):
    s = _sampler(prior)
    interp = explore.interpolation(s, paths=3, steps=5, seed=1)
    a, b = _draw(s, 3, 1, times=2)
    assert interp.z.shape == (5, 3, 8) and interp.images.shape == (5, 3, 1, 16, 16) and interp.labels is None
    assert torch.allclose(interp.z[0], a, atol=1e-5) and torch.allclose(interp.z[-1], b, atol=1e-5)
    assert torch.allclose(interp.images[0], s.decode(a), atol=1e-5)
    assert torch.allclose(interp.images[-1], s.decode(b), atol=1e-5)
    straight = (a + b) / 2
    if prior == "uniform":  # the cube: a straight line
        assert torch.allclose(interp.z[2], straight, atol=1e-5)
    else:                   # slerp keeps the norm typical: the mean of the endpoint norms, not the chord's
        assert not torch.allclose(interp.z[2], straight, atol=1e-3)
        assert torch.allclose(interp.z[2].norm(dim=1), (a.norm(dim=1) + b.norm(dim=1)) / 2, atol=1e-4)


def test_interpolation_keeps_the_label_fixed_along_a_path():
    s = _sampler(c_dim=3, norm="virtual_batch")
    interp = explore.interpolation(s, paths=4, steps=3, seed=2)
    assert interp.labels.tolist() == [0, 1, 2, 0]                            # one class per path, in turn
    a, b = _draw(s, 4, 2, times=2)
    assert torch.allclose(interp.images[-1], s.decode(b, interp.labels), atol=1e-5)
    assert not torch.allclose(interp.images[-1], s.decode(b, torch.tensor([1, 2, 0, 1])), atol=1e-4)
    fixed = explore.interpolation(s, paths=4, steps=3, seed=2, cls=2)
    assert fixed.labels.tolist() == [2, 2, 2, 2]
    assert torch.allclose(fixed.images[0], s.decode(a, fixed.labels), atol=1e-5)


def test_interpolate_cli_writes_grid_gif_and_npz(run, tmp_path, cli):
    out = tmp_path / "interp"
    code, stdout, err = cli("interpolate", run, "--out", out, "--paths", 3, "--steps", 4, "--seed", 5)
    assert code == 0, err
    cell = (16 + 2) * 4                                                      # 16 px enlarged 4x, 2 px padding
    assert Image.open(out / "interpolation.png").size == (4 * cell + 8, 3 * cell + 8)  # 4 steps x 3 paths
    gif = Image.open(out / "interpolation.gif")
    assert gif.n_frames == 4 + 2                                             # forward, then back without the ends
    z = np.load(out / "interpolation.npz")["z"]
    a, b = _draw(load_sampler(run), 3, 5, times=2)
    assert z.shape == (4, 3, 8) and np.allclose(z[0], a.numpy(), atol=1e-5) and np.allclose(z[-1], b.numpy(), atol=1e-5)
    before = (out / "interpolation.png").read_bytes()
    code, _, err = cli("interpolate", run, "--out", out, "--paths", 2)
    assert code == 2 and "exists" in err and (out / "interpolation.png").read_bytes() == before


# ------------------------------------------------------------------------------------------------------------------
# truncation


def test_truncation_shrinks_z_for_the_normal_prior():
    s = _sampler("normal")
    (full,), (cut,) = _draw(s, 64, 3), _draw(s, 64, 3, psi=0.5)
    assert torch.allclose(cut.norm(dim=1), 0.5 * full.norm(dim=1), atol=1e-5)
    assert (cut.norm(dim=1) < full.norm(dim=1)).all()
    interp = explore.interpolation(s, paths=2, steps=3, seed=4, truncation=0.5)
    a, b = _draw(s, 2, 4, times=2)
    assert torch.allclose(interp.z[0], 0.5 * a, atol=1e-5) and torch.allclose(interp.z[-1], 0.5 * b, atol=1e-5)
    res = explore.arithmetic(s, "0,1,2", "3,4,5", "6,7,8", seed=4, sheet_n=9, truncation=0.5)
    (sheet,) = _draw(s, 9, 4, psi=0.5)
    assert torch.allclose(res.groups[0].z, sheet[:3])


# ------------------------------------------------------------------------------------------------------------------
# the numbered sheet and arithmetic


def test_arithmetic_decodes_the_mean_sum_and_its_neighbours():
    s = _sampler("normal")
    res = explore.arithmetic(s, "0,1,2", "3,4,5,9", "6,7,8", seed=7, sheet_n=10, neighbours=3, noise=0.25)
    (z,) = _draw(s, 10, 7)                                                   # the sheet of (seed 7, n 10)
    mean_a, mean_b, mean_c = z[[0, 1, 2]].mean(0), z[[3, 4, 5, 9]].mean(0), z[[6, 7, 8]].mean(0)
    want = mean_a - mean_b + mean_c
    assert torch.allclose(res.result_z, want, atol=1e-6)
    assert torch.allclose(res.means, torch.stack([mean_a, mean_b, mean_c]), atol=1e-6)
    assert torch.allclose(res.result_images[0], s.G(want[None])[0], atol=1e-5)
    assert torch.allclose(res.mean_images[1], s.G(mean_b[None])[0], atol=1e-5)
    assert [m.shape for m in res.member_images] == [(3, 1, 16, 16), (4, 1, 16, 16), (3, 1, 16, 16)]
    assert res.result_images.shape == (4, 1, 16, 16) and res.neighbours_z.shape == (3, 8)
    off = (res.neighbours_z - want).abs()
    assert off.max() <= 0.25 and off.min() > 0                               # near the result, not on it
    assert torch.allclose(res.result_images[1:], s.decode(res.neighbours_z), atol=1e-5)


def test_sphere_prior_results_are_projected_back_onto_the_sphere():
    s = _sampler("sphere")
    res = explore.arithmetic(s, "0,1,2", "3,4,5", "6,7,8", seed=1, sheet_n=9, neighbours=2)
    (z,) = _draw(s, 9, 1)
    raw = z[:3].mean(0) - z[3:6].mean(0) + z[6:].mean(0)
    assert abs(raw.norm() - 8 ** 0.5) > 0.05 and z[:3].mean(0).norm() < 8 ** 0.5 - 0.5  # off the sphere unprojected
    assert torch.allclose(res.result_z, raw / raw.norm() * 8 ** 0.5, atol=1e-5)
    assert torch.allclose(torch.cat([res.means, res.neighbours_z]).norm(dim=1), torch.full((5,), 8 ** 0.5), atol=1e-5)


def test_arithmetic_on_a_conditional_model_averages_label_embeddings():
    s = _sampler("normal", c_dim=3)
    res = explore.arithmetic(s, "class:1", "0,1,2", "class:2", seed=0, sheet_n=6, neighbours=1, class_n=5)
    z, y, _ = explore.sheet(s, 6, 0)
    G, E = s.G, s.G.embed.weight.detach()
    assert res.groups[0].labels.tolist() == [1] * 5 and res.groups[1].labels.tolist() == y[:3].tolist()
    assert not torch.allclose(res.groups[0].z, z[:5]) and torch.equal(res.groups[1].z, z[:3])  # fresh draws
    # by hand: G's input is [z, embed(y)], so the sum is taken over both parts
    e = E[1] - E[y[:3]].mean(0) + E[2]
    x = torch.cat([res.result_z, e])[None, :, None, None]                   # (1, z_dim + c_embed_dim, 1, 1)
    assert torch.allclose(res.result_embed, e, atol=1e-6)
    assert torch.allclose(res.result_images[0], G.net(x)[0], atol=1e-5)
    assert G.embed.num_embeddings == 3                                       # the label table is restored


def test_class_group_mean_decodes_with_its_class_under_virtual_batch_norm():
    s = _sampler("normal", c_dim=3, norm="virtual_batch")
    res = explore.arithmetic(s, "class:1", "class:0", "class:2", seed=0, sheet_n=4, neighbours=0)
    for i, k in enumerate((1, 0, 2)):
        want = s.decode(res.means[i: i + 1], torch.tensor([k]))
        assert torch.allclose(res.mean_images[i: i + 1], want, atol=1e-5)


def test_sheet_indices_reproduce_the_same_z_and_images(run, tmp_path, cli):
    assert cli("sample", run, "--sheet", "--n", 16, "--seed", 3, "--out", tmp_path / "sheet.png")[0] == 0
    assert Image.open(tmp_path / "sheet.png").size == (4 * 72 + 8,) * 2       # 4 x 4 cells of 18 px, enlarged 4x
    assert cli("sample", run, "--n", 16, "--seed", 3, "--out", tmp_path / "s.npz")[0] == 0
    code, _, err = cli("arithmetic", run, "--a", "2,5,11", "--b", "0,1,15", "--c", "3,4,6", "--seed", 3,
                       "--sheet-n", 16, "--out", tmp_path / "ar.png")
    assert code == 0, err
    saved = np.load(tmp_path / "ar.npz")
    s = load_sampler(run)
    (z,) = _draw(s, 16, 3)
    assert np.allclose(saved["a_z"], z[[2, 5, 11]].numpy())
    images = np.load(tmp_path / "s.npz")["images"]
    assert np.array_equal(viz.to_uint8(s.decode(torch.from_numpy(saved["c_z"]))), images[[3, 4, 6]])
    want = z[[2, 5, 11]].mean(0) - z[[0, 1, 15]].mean(0) + z[[3, 4, 6]].mean(0)
    assert np.allclose(saved["result"], want.numpy(), atol=1e-6) and saved["neighbours"].shape == (4, 8)
    assert Image.open(tmp_path / "ar.png").size[1] == 4 * 72 + 8               # three groups and the result row


@pytest.mark.parametrize("args,needle", [
    (["--a", "1,2"], "three or more"),
    (["--a", "1,2,16"], "index 16 is outside the sheet (0..15)"),
    (["--a", "1,1,2"], "repeated"),
    (["--a", "one,two,three"], "expected sheet indices"),
    (["--a", "class:1"], "need a conditional model"),
    (["--noise", "-1"], "must not be negative"),
    (["--truncation", "0"], "must be in (0, 1]"),
])
def test_arithmetic_user_errors(run, tmp_path, cli, args, needle):
    base = {"--a": "1,2,3", "--b": "4,5,6", "--c": "7,8,9"}
    flags = dict(base, **dict(zip(args[::2], args[1::2])))
    code, _, err = cli("arithmetic", run, *[x for kv in flags.items() for x in kv], "--sheet-n", 16,
                       "--out", tmp_path / "ar.png")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "ar.png").exists()


def test_existing_outputs_are_refused(run, tmp_path, cli):
    (tmp_path / "ar.npz").write_bytes(b"mine")
    code, _, err = cli("arithmetic", run, "--a", "1,2,3", "--b", "4,5,6", "--c", "7,8,9",
                       "--out", tmp_path / "ar.png")
    assert code == 2 and "ar.npz exists" in err and (tmp_path / "ar.npz").read_bytes() == b"mine"
    (tmp_path / "sheet.png").write_bytes(b"mine")
    code, _, err = cli("sample", run, "--sheet", "--out", tmp_path / "sheet.png")
    assert code == 2 and "exists" in err and (tmp_path / "sheet.png").read_bytes() == b"mine"


def test_points_models_and_short_paths_are_user_errors():
    from gankit.models import mlp

    points = Sampler(mlp.Generator(z_dim=2, out_shape=(2,), width=8, layers=1).eval(), "normal")
    with pytest.raises(UserError, match="image model"):
        explore.interpolation(points)
    with pytest.raises(UserError, match="at least 2"):
        explore.interpolation(_sampler(), steps=1)
    with pytest.raises(UserError, match="needs a conditional model"):
        explore.interpolation(_sampler(), cls=0)
    with pytest.raises(UserError, match=r"in 0\.\.2, got 3"):
        explore.interpolation(_sampler(c_dim=3), cls=3)
