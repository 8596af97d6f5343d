import json
import logging
import math

import pytest
import torch

from gankit import data, metrics
from gankit.errors import UserError
from gankit.metrics import classes, classifier as clf, features, fid, prdc


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits8():
    return data.load("digits", img_size=8)


@pytest.fixture(scope="module")
def local8(digits8):
    """The same images under a name no shipped classifier has: metrics train and cache a classifier for it."""
    import dataclasses
    return dataclasses.replace(digits8, name="folder:digits8")


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory, local8):
    """A cache folder holding local8's classifier, trained once for this module; counts the trainings."""
    folder = tmp_path_factory.mktemp("gankit-cache")
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_CACHE", str(folder))
        real_fit = clf.fit
        mp.setattr(clf, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
        first = clf.real_classifier(local8)
    return folder, first, len(calls)


class Stub:
    """A 'generator' that returns given images and labels: lets a test fix what the metrics see."""

    def __init__(self, x, y=None):
        self.x, self.y, self.c_dim = x, y, 0 if y is None else 10

    def __call__(self, n, generator=None):
        return self.x[:n], None if self.y is None else self.y[:n]


def _ctx(monkeypatch, trained_cache, d, x, y=None, n=None):
    monkeypatch.setenv("GANKIT_CACHE", str(trained_cache[0]))
    return metrics.EvalContext(Stub(x, y), d, n=n or len(x), seed=0)


# ------------------------------------------------------------------------------------------------------------------
# FID, KID, IS


def test_fid_of_a_set_against_itself_is_zero():
    f = torch.randn(500, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(fid.fid_from_features(f, f)) < 1e-8
    assert fid.fid_from_features(f, f + 1) == pytest.approx(8.0, rel=1e-6)  # a mean shift of 1 in 8 dimensions


def test_fid_agrees_with_the_closed_form_for_diagonal_gaussians():
    f64 = dict(dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0, 0.5], **f64), torch.tensor([1.0, 1.0, 0.0, 0.0], **f64)
    s1, s2 = torch.tensor([1.0, 4.0, 0.25, 2.0], **f64), torch.tensor([2.0, 1.0, 1.0, 2.0], **f64)
    # For diagonal covariances sqrt(S1 S2) = diag(sqrt(s1 s2)): FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    closed = ((mu1 - mu2) ** 2).sum() + ((s1.sqrt() - s2.sqrt()) ** 2).sum()
    assert fid.frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(closed.item(), rel=1e-9)
    gen = torch.Generator().manual_seed(1)
    a = mu1 + s1.sqrt() * torch.randn(40_000, 4, generator=gen, dtype=torch.float64)
    b = mu2 + s2.sqrt() * torch.randn(40_000, 4, generator=gen, dtype=torch.float64)
    assert fid.fid_from_features(a, b) == pytest.approx(closed.item(), rel=0.03)


def test_fid_eps_fallback_on_a_singular_covariance(caplog):
    s1, s2 = torch.diag(torch.tensor([1.0, 0.0, 4.0])), torch.diag(torch.tensor([4.0, 0.0, 1.0]))
    mu1, mu2 = torch.zeros(3), torch.tensor([0.0, 3.0, 0.0])
    with caplog.at_level(logging.WARNING, logger="gankit"):
        value = fid.frechet_distance(mu1, s1, mu2, s2)
    assert any("singular" in r.getMessage() for r in caplog.records)
    assert value == pytest.approx(9.0 + 1.0 + 0.0 + 1.0, abs=1e-4)  # |dmu|^2 + (1-2)^2 + 0 + (2-1)^2


def test_fid_refuses_a_root_with_a_large_imaginary_part():
    with pytest.raises(ValueError, match="imaginary"):  # sqrt(diag(1, -1)) = diag(1, i)
        fid.frechet_distance(torch.zeros(2), torch.diag(torch.tensor([1.0, -1.0])), torch.zeros(2), torch.eye(2))


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=gen), torch.randn(400, 8, generator=gen)
    same, same_std = fid.kid_from_features(a, b, subsets=30)
    shifted, _ = fid.kid_from_features(a, b + 1, subsets=30)
    assert abs(same) < 3 * same_std + 1e-3 and shifted > 20 * max(abs(same), same_std)


def test_inception_score_bounds():
    labels = torch.arange(100) % 10
    confident = 50.0 * torch.nn.functional.one_hot(labels, 10).double()  # every split holds each class once
    assert fid.inception_score(confident)[0] == pytest.approx(10.0, rel=1e-9)
    assert fid.inception_score(50.0 * torch.nn.functional.one_hot(torch.zeros(100).long(), 10))[0] == \
        pytest.approx(1.0, rel=1e-9)
    score, _ = fid.inception_score(torch.randn(300, 10, generator=torch.Generator().manual_seed(0)) * 3)
    assert 1.0 < score < 10.0


# ------------------------------------------------------------------------------------------------------------------
# precision / recall, density / coverage


def _hexagon(centre, radius=1.0):
    angles = torch.arange(6) * (math.pi / 3)
    return torch.tensor(centre) + radius * torch.stack([angles.cos(), angles.sin()], 1)


def test_prdc_on_hand_built_sets():
    # Two unit hexagons 20 apart. Within one, a vertex's neighbours lie at 1, 1, sqrt 3, sqrt 3, 2: so the real
    # radii are sqrt 3 (k = 3) and 2 (k = 5). The fakes: a hexagon of radius 0.5 inside the first (fake k = 3 radii
    # sqrt(3)/2), each fake 0.5 to 1.5 from every vertex of the first hexagon and ~19 from the second.
    real = torch.cat([_hexagon([0.0, 0.0]), _hexagon([20.0, 0.0])])
    fake = _hexagon([0.0, 0.0], 0.5)
    r = prdc.prdc(real, fake)
    assert r["precision"] == 1.0            # every fake inside a real ball
    assert r["recall"] == 0.5               # only the first hexagon's vertices lie inside fake balls
    assert r["density"] == pytest.approx(6 * 6 / (5 * 6))  # each fake inside all 6 balls of the first hexagon
    assert r["coverage"] == 0.5
    far = prdc.prdc(real, _hexagon([0.0, 50.0]))
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = prdc.prdc(real, real, chunk=5)   # chunks smaller than the sets give the same answer
    assert (same["precision"], same["recall"], same["coverage"]) == (1.0, 1.0, 1.0)
    assert same["density"] == pytest.approx(6 / 5)


def test_knn_radii_match_sorting():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    radii = prdc.knn_radii(x, (3, 5), chunk=7)
    brute = torch.cdist(x, x).sort(1).values
    assert torch.allclose(radii[3], brute[:, 3], atol=1e-5) and torch.allclose(radii[5], brute[:, 5], atol=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# the data set's classifier, class accuracy, CAS, memorisation


def test_classifier_is_trained_once_then_read_from_the_cache(monkeypatch, trained_cache, local8):
    folder, first, trainings = trained_cache
    assert trainings == 1 and first.path.parent.parent == folder and first.path.is_file() and not first.shipped
    assert first.accuracy > 0.9 and first.n_train + first.n_held_out == len(local8)
    monkeypatch.setenv("GANKIT_CACHE", str(folder))
    monkeypatch.setattr(clf, "fit", lambda *a, **k: pytest.fail("the cached classifier was trained again"))
    again = clf.real_classifier(local8)
    assert again.accuracy == first.accuracy
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), first.model.state_dict().values()))
    # other data never shares the entry: another size, or one changed pixel, gives another key
    changed = data.load("digits", img_size=8)
    changed.x[0, 0, 0, 0] += 1
    keys = {clf.data_key(data.load("digits", img_size=8)), clf.data_key(data.load("digits", img_size=16)),
            clf.data_key(changed)}
    assert len(keys) == 3 and all(k.startswith("digits-") for k in keys)


def test_class_accuracy(monkeypatch, trained_cache, digits8):
    assert classes.class_accuracy(torch.eye(4), torch.tensor([0, 1, 2, 0])) == 0.75
    _, held = clf.split_indices(len(digits8))
    x, y = digits8.floats()[held], digits8.y[held]
    right = metrics.evaluate(["class_acc"], _ctx(monkeypatch, trained_cache, digits8, x, y, n=300))
    wrong = metrics.evaluate(["class_acc"], _ctx(monkeypatch, trained_cache, digits8, x, (y + 1) % 10, n=300))
    assert right["class_acc"] > 0.9 and wrong["class_acc"] < 0.1
    assert right["class_acc_floor"] == right["classifier_acc"] == clf.shipped_classifier("digits").accuracy
    assert right["n_samples"] == 300


def test_cas_against_its_floor(monkeypatch, trained_cache, digits8):
    train_idx, _ = clf.split_indices(len(digits8))
    x, y = digits8.floats()[train_idx], digits8.y[train_idx]
    # "generated" = the real training part itself: the same recipe on the same images gives the floor exactly
    same = metrics.evaluate(["cas"], _ctx(monkeypatch, trained_cache, digits8, x, y, n=5000))
    assert same["cas_n"] == len(train_idx) and same["cas"] == pytest.approx(same["cas_floor"], abs=1e-12)
    # labels off by one: the classifier learns the wrong names and fails on real data
    wrong = metrics.evaluate(["cas"], _ctx(monkeypatch, trained_cache, digits8, x, (y + 1) % 10, n=5000))
    assert wrong["cas"] < 0.1 < 0.9 < wrong["cas_floor"]


def test_memorization_sees_copies(monkeypatch, trained_cache, digits8):
    train_idx, held_idx = clf.split_indices(len(digits8))
    copies = metrics.evaluate(["memorization"], _ctx(monkeypatch, trained_cache, digits8, digits8.floats()[train_idx]))
    assert copies["memorization_mean"] < 1e-3 < 0.05 < copies["memorization_mean_floor"]  # 0 up to cdist rounding
    new = metrics.evaluate(["memorization"], _ctx(monkeypatch, trained_cache, digits8, digits8.floats()[held_idx]))
    assert new["memorization_mean"] == pytest.approx(new["memorization_mean_floor"])
    assert new["memorization_n"] == len(held_idx)


def test_feature_metrics_with_their_floors(monkeypatch, trained_cache, digits8):
    """Real images as the 'generated' set score about as well as the floor; noise scores far worse."""
    perm = torch.randperm(len(digits8), generator=torch.Generator().manual_seed(5))
    names = ["fid", "kid", "is", "pr", "dc"]
    real = metrics.evaluate(names, _ctx(monkeypatch, trained_cache, digits8, digits8.floats()[perm], n=400))
    noise = torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bad = metrics.evaluate(names, _ctx(monkeypatch, trained_cache, digits8, noise))
    assert real["n_samples"] == bad["n_samples"] == 400
    assert real["classifier_acc"] == clf.shipped_classifier("digits").accuracy
    assert real["fid"] < 2 * real["fid_floor"] < bad["fid"] / 10
    assert 1 <= bad["is"] < real["is"] <= 10 and 1 <= real["is_floor"] <= 10
    assert real["precision"] > 0.7 and real["recall"] > 0.7 and bad["precision"] < 0.1 and bad["coverage"] < 0.1
    assert {"kid_floor", "precision_floor", "recall_floor", "density_floor", "coverage_floor"} <= real.keys()


def test_inception_weights_missing_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    with pytest.raises(UserError) as e:
        features.load_inception()
    assert features.INCEPTION_FILE in str(e.value) and str(tmp_path / "torch" / "hub" / "checkpoints") in str(e.value)


# ------------------------------------------------------------------------------------------------------------------
# gankit eval, and evaluation during training


def test_eval_cli_writes_json_and_markdown(tiny_run, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("eval", tiny_run, "--n", 200, "--metrics", "fid,is,pr")
    assert code == 0, err
    record = json.loads((tiny_run / "eval" / "step-0000020.json").read_text())
    res = record["results"]
    assert {"fid", "fid_floor", "precision", "precision_floor", "recall_floor"} <= res.keys()
    assert res["n_samples"] == 200 and record["features"] == "classifier" and 1 <= res["is"] <= 10
    assert res["classifier_acc"] == record["classifier"]["held_out_accuracy"] > 0.9
    md = (tiny_run / "eval" / "step-0000020.md").read_text()
    assert md in out and "floor" in out and f"| fid | {res['fid']:.4g} | {res['fid_floor']:.4g} |" in out
    # a second evaluation never overwrites the first
    assert cli("eval", tiny_run, "--n", 50, "--metrics", "pr")[0] == 0
    assert json.loads((tiny_run / "eval" / "step-0000020.json").read_text()) == record
    assert json.loads((tiny_run / "eval" / "step-0000020-2.json").read_text())["results"]["n_samples"] == 50
    # errors: one line naming what is allowed
    for args, needle in [(["--metrics", "cas"], "choose from"), (["--metrics", "nope"], "choose from"),
                         (["--features", "vgg"], "auto, classifier, inception"), (["--checkpoint", 7], "steps saved")]:
        code, _, err = cli("eval", tiny_run, *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("eval", tmp_path / "no-such-run")
    assert code == 2 and "not a run folder" in err
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = cli("eval", tiny_run, "--features", "inception", "--metrics", "fid")
    assert code == 2 and features.INCEPTION_FILE in err
    # during training: eval_metrics appends eval/<key> to metrics.jsonl
    code, _, err = cli("train", "--resume", tiny_run, "--steps", 22, "--eval_metrics", "fid,pr", "--eval_n", 100,
                       "--no-progress")
    assert code == 0, err
    last = json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 22 and {"eval/fid", "eval/fid_floor", "eval/precision", "eval/n_samples"} <= last.keys()


def test_a_failing_evaluation_does_not_cost_the_run(tiny_run, cli, monkeypatch, caplog):
    def boom(names, ctx):
        raise ModuleNotFoundError("No module named 'torch_fidelity'")

    monkeypatch.setattr(metrics, "evaluate", boom)
    with caplog.at_level(logging.ERROR, logger="gankit"):
        code, _, err = cli("train", "--resume", tiny_run, "--steps", 24, "--eval_metrics", "kid", "--eval_every", 2,
                           "--no-progress")
    assert code == 0, err
    failures = [r.getMessage() for r in caplog.records if "evaluation at step" in r.getMessage()]
    assert len(failures) == 2 and "torch_fidelity" in failures[-1] and "gankit eval" in failures[-1]
    # the run went on to its last step and saved it
    assert json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 24
    assert torch.load(tiny_run / "checkpoints" / "latest.pt", weights_only=False)["step"] == 24


# ------------------------------------------------------------------------------------------------------------------
# shipped classifiers, recognisable samples, Stacked MNIST's modes


def test_shipped_classifiers_are_checked_and_used_for_their_data_sets(tmp_path, monkeypatch, digits8):
    shipped = clf.shipped_classifier("digits")
    assert shipped.shipped and shipped.accuracy > 0.95 and "shipped digits-cnn" in shipped.source
    assert clf.real_classifier(digits8).path == shipped.path   # no training, whatever the cache holds
    assert clf.shipped_classifier("folder:x") is None
    # a tampered weights file is refused with a line that says what to do
    import shutil
    for f in clf.SHIPPED_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    w = tmp_path / f"{clf.SHIPPED['digits']}.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 1
    w.write_bytes(bytes(raw))
    monkeypatch.setattr(clf, "SHIPPED_DIR", tmp_path)
    with pytest.raises(UserError, match="checksum"):
        clf.shipped_classifier("digits")


def test_shipped_classifier_gives_the_same_fid_with_1_or_2_threads(digits8):
    model = clf.shipped_classifier("digits").model
    x = digits8.floats()
    noisy = (x[:600] + 0.3 * torch.randn(600, 1, 8, 8, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    before, out = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(fid.fid_from_features(clf.predict(model, noisy)[0].double(),
                                             clf.predict(model, x[900:1500])[0].double()))
    finally:
        torch.set_num_threads(before)
    assert out[0] > 1 and f"{out[0]:.4g}" == f"{out[1]:.4g}"


def test_weak_classifier_warns_loudly(monkeypatch, caplog, local8):
    weak = clf.Classifier(None, 0.62, 10, 5, 0.0, tmp := clf.cache_dir() / "x.pt")
    monkeypatch.setattr(clf, "_cached_classifier", lambda data, device="cpu": weak)
    with caplog.at_level(logging.WARNING, logger="gankit"):
        assert clf.real_classifier(local8) is weak
    assert any("WARNING" in r.getMessage() and "62.0 %" in r.getMessage() and "mean little" in r.getMessage()
               for r in caplog.records), tmp


def test_recognisable_real_against_noise_and_a_skewed_class_mix(monkeypatch, digits8):
    from gankit.metrics.classes import class_histogram_kl
    perm = torch.randperm(len(digits8), generator=torch.Generator().manual_seed(3))
    x, y = digits8.floats(), digits8.y
    real = metrics.evaluate(["recognisable"], metrics.EvalContext(Stub(x[perm]), digits8, n=800, seed=0))
    other = torch.randperm(len(digits8), generator=torch.Generator().manual_seed(4))
    differ = (y[perm] != y[other]).nonzero().flatten()[:800]
    between = 0.5 * (x[perm][differ] + x[other][differ])     # halfway between two digits of different classes
    bad = metrics.evaluate(["recognisable"], metrics.EvalContext(Stub(between), digits8, n=800, seed=0))
    ones = x[y == 1]
    skew = metrics.evaluate(["recognisable"], metrics.EvalContext(Stub(ones), digits8, n=len(ones), seed=0))
    assert real["recognisable"] > 0.85 and abs(real["recognisable"] - real["recognisable_floor"]) < 0.05
    assert bad["recognisable"] < 0.75 * real["recognisable"]
    assert real["class_kl"] < 0.05 and real["class_kl_floor"] < 0.05
    assert skew["class_kl"] > 1.5  # all ones: about log(10) = 2.3 from the real mix
    eye = torch.eye(4) * 10
    assert class_histogram_kl(eye, eye) == 0.0


def test_stacked_mnist_data_and_modes(mnist_dir):
    from gankit.metrics import modes
    ds = data.load("stacked-mnist", str(mnist_dir), img_size=32, n_points=600)
    again = data.load("stacked-mnist", str(mnist_dir), img_size=32, n_points=600)
    assert ds.x.shape == (600, 3, 32, 32) and ds.num_classes == 1000 and torch.equal(ds.x, again.x)
    mnist_clf = clf.shipped_classifier("mnist")
    read = modes.stacked_modes(ds.floats(), mnist_clf)
    assert (read == ds.y).double().mean() > 0.95            # each channel's digit read back
    one_mode = ds.floats()[:1].expand(300, -1, -1, -1)
    stats = modes.stacked_stats(one_mode, mnist_clf)
    assert stats["modes"] == 1 and stats["reverse_kl"] == pytest.approx(math.log(1000))
    real = metrics.evaluate(["modes"], metrics.EvalContext(Stub(ds.floats()), ds, n=600, seed=0))
    assert real["modes"] == pytest.approx(real["modes_floor"], abs=15) and real["modes"] > 400
    with pytest.raises(UserError, match="does not apply"):
        metrics.check_names(["modes"], "image", False, data_name="mnist")
