"""gankit serve: the JSON API through Starlette's test client on tiny runs (a DCGAN with an averaged G, a conditional
one, an sr and an ssl run): every answer is the one gankit's own functions give (the CLI's sheet, explore's moves,
paths and arithmetic, the apps), the principal directions move G's features more than a random direction, and a
set of hostile requests each gets a 4xx with a message and changes no file."""

import base64
import hashlib
import io
import json
import logging
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from gankit import explore, run as run_mod, viz
from gankit.tasks.ssl import classify
from gankit.tasks.sr import upscale
from gankit.cli import main
from gankit.errors import UserError

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():   # Starlette 1.x suggests httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from gankit.serve import app as app_mod, images, make_app, open_runs, server  # noqa: E402
from gankit.serve.runs import LOAD_TAKES_WEIGHTS  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]
SR = ["--task", "sr", "--model", "srresnet", "--data", "digits", "--img_size", "16", "--sr_scale", "4",
      "--holdout", "100", "--g_width", "8", "--g_layers", "1", "--d_width", "4", "--batch_size", "16",
      "--log_every", "5", "--eval_every", "10", "--sample_every", "10", "--ckpt_every", "0", "--precision", "fp32",
      "--no-progress"]
SSL = ["--task", "ssl", "--model", "mlp", "--data", "digits", "--img_size", "8", "--holdout", "100",
       "--labels_per_class", "5", "--z_dim", "8", "--g_width", "16", "--g_layers", "1", "--d_width", "32",
       "--d_layers", "3", "--batch_size", "32", "--log_every", "5", "--eval_every", "10", "--sample_every", "10",
       "--ckpt_every", "0", "--precision", "fp32", "--no-progress"]
EVAL = {"step": 20, "n": 100, "features": "classifier", "seed": 0,
        "results": {"fid": 120.5, "fid_floor": 12.7, "precision": 0.25, "precision_floor": 0.96, "n_samples": 100}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("serve")
    for name, flags in (("g", [*TINY, "--steps", "20", "--ema_decay", "0.9"]),
                        ("c", [*TINY, "--steps", "10", "--cond", "concat"]),
                        ("sr", [*SR, "--steps", "10"]), ("ssl", [*SSL, "--steps", "10"])):
        assert main(["train", *flags, "--out", str(root), "--name", name]) == 0
    (root / "g" / "eval").mkdir()
    (root / "g" / "eval" / "step-0000020.json").write_text(json.dumps(EVAL))
    run_mod.record_evaluation(root / "g", EVAL)
    return root


@pytest.fixture(scope="module")
def client(runs):
    app = make_app(open_runs([runs / n for n in ("g", "c", "sr", "ssl")]))
    return TestClient(app, raise_server_exceptions=False)


def pixels(url: str) -> np.ndarray:
    """A data: URL's PNG as uint8 (H, W) or (H, W, C)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))))


def as_uint8(x: torch.Tensor) -> np.ndarray:
    arr = viz.to_uint8(x[None])[0]
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def sampler_of(client, rid, weights="ema"):
    return client.app.state.runs[rid].sampler(weights)


def upload(size=(20, 12), value=128, mode="L") -> str:
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def post(client, rid, work, body):
    r = client.post(f"/api/runs/{rid}/{work}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------------------------------------------
# what each request answers


def test_the_runs_pages_and_what_each_run_has(client):
    listed = {r["id"]: r["apps"] for r in client.get("/api/runs").json()["runs"]}
    assert listed == {"g": ["explore", "arithmetic", "inpaint"], "c": ["explore", "arithmetic", "inpaint"],
                      "sr": ["upscale"], "ssl": ["explore", "arithmetic", "classify"]}
    for path in ("/", "/runs/g", "/runs/sr/progress", "/compare"):
        r = client.get(path)
        assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>") and "script-src" not in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
    info = client.get("/api/runs/c").json()
    assert (info["z_dim"], info["c_dim"], info["shape"], len(info["directions"])) == (8, 10, [1, 16, 16], 8)
    assert client.get("/api/runs/sr").json()["low_res"] == 4


def test_the_grid_is_the_cli_sheet_of_its_seed_and_the_class_picker_fixes_the_class(client):
    s = sampler_of(client, "c")
    got = post(client, "c", "samples", {"n": 6, "seed": 5})["samples"]
    z, labels, _ = explore.sheet(s, 6, 5)
    want = s.decode(z, labels)
    assert [g["index"] for g in got] == list(range(6)) and all(g["seed"] == 5 for g in got)
    assert torch.allclose(torch.tensor([g["z"] for g in got]), z)
    assert [g["label"] for g in got] == labels.tolist()
    assert all(np.array_equal(pixels(g["image"]), as_uint8(w)) for g, w in zip(got, want))
    other = post(client, "c", "samples", {"n": 6, "seed": 6})["samples"]
    assert not np.allclose(other[0]["z"], got[0]["z"])
    assert {g["label"] for g in post(client, "c", "samples", {"n": 6, "seed": 5, "cls": 3})["samples"]} == {3}
    small = post(client, "c", "samples", {"n": 6, "seed": 5, "truncation": 0.5})["samples"]
    assert np.allclose(np.array(small[0]["z"]), 0.5 * np.array(got[0]["z"]), atol=1e-6)


def test_principal_directions_move_the_features_more_than_random_ones(client):
    s = sampler_of(client, "g")
    d = explore.principal_directions(s, 4, 1000, seed=1)
    assert torch.equal(d.vectors, explore.principal_directions(s, 4, 1000, seed=1).vectors)   # deterministic
    assert torch.allclose(d.vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (d.explained[:-1] >= d.explained[1:]).all() and 0 < d.explained.sum() <= 1
    z = s.z(200, torch.Generator().manual_seed(2))
    base = explore._first_layer_features(s, z, None)
    gain = [(explore._first_layer_features(s, z + v, None) - base).norm(dim=1).mean().item()
            for v in torch.cat([d.vectors[:1], explore.keep_on_prior(torch.randn(8, s.z_dim), "sphere") / 8 ** 0.5])]
    assert gain[0] > max(gain[1:]), gain


def test_a_slider_moves_z_along_a_direction_as_explore_move_does(client):
    s = sampler_of(client, "g")
    g0 = post(client, "g", "samples", {"n": 1, "seed": 0})["samples"][0]
    still = post(client, "g", "decode", {"z": g0["z"], "amounts": [0] * 8})
    assert np.allclose(still["z"], g0["z"]) and np.array_equal(pixels(still["image"]), pixels(g0["image"]))
    amounts = [2.0] + [0] * 7
    moved = post(client, "g", "decode", {"z": g0["z"], "amounts": amounts})
    want = explore.move(s, torch.tensor([g0["z"]]), client.app.state.runs["g"].directions(), torch.tensor(amounts))
    assert torch.allclose(torch.tensor(moved["z"]), want[0], atol=1e-6)
    assert not np.array_equal(pixels(moved["image"]), pixels(g0["image"]))


def test_the_path_between_two_samples_is_the_priors_interpolation(client):
    a, b = post(client, "c", "samples", {"n": 2, "seed": 1})["samples"]
    ends = [post(client, "c", "between", {"a": a, "b": b, "t": t}) for t in (0, 0.5, 1)]
    assert np.allclose(ends[0]["z"], a["z"], atol=1e-5) and np.allclose(ends[2]["z"], b["z"], atol=1e-5)
    assert np.array_equal(pixels(ends[0]["image"]), pixels(a["image"]))
    mid = explore.interpolate(torch.tensor([a["z"]]), torch.tensor([b["z"]]), 3, "normal")[1, 0]   # slerp
    assert torch.allclose(torch.tensor(ends[1]["z"]), mid, atol=1e-5)


def test_arithmetic_of_kept_samples_is_explores(client):
    s = sampler_of(client, "c")
    kept = post(client, "c", "samples", {"n": 5, "seed": 2})["samples"]
    body = {"a": kept[:2], "b": kept[2:3], "c": kept[3:5], "neighbours": 2, "seed": 4}
    got = post(client, "c", "arithmetic", body)
    zs = [torch.tensor([k["z"] for k in group]) for group in (kept[:2], kept[2:3], kept[3:5])]
    assert torch.allclose(torch.tensor(got["result_z"]), zs[0].mean(0) - zs[1].mean(0) + zs[2].mean(0), atol=1e-5)
    groups = [explore.Group(n, n, z, torch.tensor([k["label"] for k in g]))
              for n, z, g in zip("ABC", zs, (kept[:2], kept[2:3], kept[3:5]))]
    want = explore.combine(s, groups, 2, 0.25, torch.Generator().manual_seed(4))
    assert np.array_equal(pixels(got["result"]), as_uint8(want.result_images[0]))
    assert [len(g["members"]) for g in got["groups"]] == [2, 1, 2] and len(got["neighbours"]) == 2


def test_inpainting_keeps_the_known_pixels_and_fills_the_hole(client):
    g0 = post(client, "g", "samples", {"n": 1, "seed": 3})["samples"][0]
    mask = np.ones((16, 16), int)
    mask[4:12, 4:12] = 0
    got = post(client, "g", "inpaint", {"z": g0["z"], "mask": mask.ravel().tolist()})
    original, done, fill = pixels(got["original"]), pixels(got["completed"]), pixels(got["fill"])
    assert np.array_equal(original, pixels(g0["image"]))
    assert np.array_equal(done[mask == 1], original[mask == 1])
    assert np.array_equal(done[mask == 0], fill[mask == 0])
    assert (pixels(got["masked"])[mask == 0] == 128).all()          # the hole shown mid-grey, as the search sees it
    from_upload = post(client, "g", "inpaint", {"image": upload((16, 16), 200), "mask": mask.ravel().tolist()})
    assert (pixels(from_upload["completed"])[mask == 1] == 200).all()


def test_upscale_and_classify_an_upload_with_the_apps_functions(client):
    up = upload((8, 8), 0)
    got = post(client, "sr", "upscale", {"image": up})
    x = images.read_upload(images.from_base64(up), 1, 4)
    G = client.app.state.runs["sr"].upscaler()
    assert pixels(got["input"]).shape == (4, 4) and pixels(got["G"]).shape == (16, 16)
    assert np.array_equal(pixels(got["G"]), as_uint8(upscale.upscale(G, x)[0]))
    probs = post(client, "ssl", "classify", {"image": up})["probabilities"]
    want = torch.softmax(classify.predict(client.app.state.runs["ssl"].classifier(),
                                          images.read_upload(images.from_base64(up), 1, 8)), 1)[0]
    assert len(probs) == 10 and np.allclose([p["p"] for p in probs], want.numpy(), atol=1e-6)


def test_an_upload_is_cropped_to_its_centre_and_decoded_as_training_reads_it():
    im = Image.new("RGBA", (30, 10), (0, 0, 0, 0))                  # transparent: composited onto white
    im.paste((0, 0, 0, 255), (10, 0, 20, 10))                       # the centre square black
    buf = io.BytesIO()
    im.save(buf, "PNG")
    x = images.read_upload(buf.getvalue(), 1, 10)
    assert x.shape == (1, 1, 10, 10) and (x == -1).all()            # only the black centre square is kept


def test_the_run_page_data_curves_evaluation_and_grids(client, runs):
    p = client.get("/api/runs/g/progress").json()
    assert p["curves"]["loss_d"][0] == [5, 10, 15, 20] and "D(G(z))" in p["curves"]
    assert p["curves"]["eval/fid"] == [[20], [120.5]]
    rows = {r["metric"]: (r["value"], r["floor"]) for r in p["evaluation"]["rows"]}
    assert rows == {"fid": (120.5, 12.7), "precision": (0.25, 0.96)}
    assert p["grids"] == [10, 20]
    png = client.get("/api/runs/g/grids/20.png")
    assert png.status_code == 200 and png.content == (runs / "g" / "samples" / "step-0000020.png").read_bytes()
    compared = {r["id"]: r for r in client.get("/api/compare").json()["runs"]}
    assert compared["g"]["grid"] == 20 and compared["g"]["evaluation"]["rows"][0]["metric"] == "fid"
    assert compared["c"]["evaluation"] is None


@pytest.mark.skipif(not LOAD_TAKES_WEIGHTS, reason="this gankit's load_sampler has no choice of weights")
def test_the_averaged_and_the_trained_generator_differ(client):
    assert client.get("/api/runs/g").json()["weights"] == ["ema", "raw"]
    ema, raw = (post(client, "g", "samples", {"n": 2, "seed": 0, "weights": w})["samples"] for w in ("ema", "raw"))
    assert ema[0]["z"] == raw[0]["z"] and not np.array_equal(pixels(ema[0]["image"]), pixels(raw[0]["image"]))
    assert client.get("/api/runs/c").json()["weights"] == ["ema"]   # kept no average: nothing to choose


def test_a_guided_grid_comes_from_the_sampler_and_has_no_z(client):
    guides = client.get("/api/runs/g").json()["guides"]
    if not guides:
        pytest.skip("this gankit's Sampler has no D-guided sampling")
    got = post(client, "g", "samples", {"n": 3, "seed": 0, "guide": guides[0]})
    assert got["guide"] == guides[0] and all(s["z"] is None and s["image"] for s in got["samples"])
    assert client.post("/api/runs/g/samples", json={"guide": "sorcery"}).status_code == 400


# ------------------------------------------------------------------------------------------------------------------
# hostile requests


def bomb_png(w=30000, h=30000) -> bytes:
    """A PNG whose header claims w x h pixels, with a tiny body: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _big_plain_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4100, 4100), 0).save(buf, "PNG")                # small file, over MAX_UPLOAD_PIXELS
    return buf.getvalue()


Z = [0.1] * 8
HOSTILE_GET = ["/static/../runs.py", "/static/%2e%2e/runs.py", "/static/%2e%2e%2fruns.py", "/static//etc/passwd",
               "/api/runs/..%2fg", "/api/runs/%2e%2e/progress", "/api/runs/%2fetc%2fpasswd",
               "/api/runs/victim/grids/999.png", "/api/runs/victim/grids/-1.png", "/api/runs/victim/grids/..%2f1.png",
               "/runs/..%2f..%2fetc%2fpasswd", "/api/runs/nosuchrun", "/api/runs/victim/samples"]
HOSTILE_POST = [
    ("samples", b"{not json", "application/json"), ("samples", b"[1, 2]", "application/json"),
    ("samples", b'{"n": 4}', "text/plain"), ("samples", b"\xff\xfe", "application/json"),
    ("samples", b"[" * 100000 + b"]" * 100000, "application/json"),
    ("samples", {"n": 10**9}, None), ("samples", {"n": -1}, None), ("samples", {"seed": "abc"}, None),
    ("samples", {"truncation": 0}, None), ("samples", {"cls": 3}, None), ("samples", {"weights": "../x"}, None),
    ("decode", {"z": Z[:3]}, None), ("decode", {"z": ["a"] * 8}, None), ("decode", {"z": [1e300] * 8}, None),
    ("decode", b'{"z": [NaN, 0, 0, 0, 0, 0, 0, 0]}', "application/json"), ("decode", {"z": [True] * 8}, None),
    ("decode", {"z": Z, "amounts": [1, 2]}, None), ("decode", {"z": Z, "amounts": [1e9] * 8}, None),
    ("between", {"a": {"z": Z}, "b": {"z": Z}, "t": 2}, None), ("between", {"a": 5, "b": {"z": Z}}, None),
    ("arithmetic", {"a": [], "b": [{"z": Z}], "c": [{"z": Z}]}, None),
    ("arithmetic", {"a": [{"z": Z}] * 17, "b": [{"z": Z}], "c": [{"z": Z}]}, None),
    ("inpaint", {"z": Z, "mask": [1] * 256}, None), ("inpaint", {"z": Z, "mask": [2] * 256}, None),
    ("inpaint", {"z": Z, "mask": [0] * 10}, None),
    ("inpaint", {"image": b64(bomb_png()), "mask": [0] * 128 + [1] * 128}, None),
    ("inpaint", {"image": b64(_big_plain_png()), "mask": [0] * 128 + [1] * 128}, None),
    ("inpaint", {"image": b64(b"GIF89a not really"), "mask": [0] * 128 + [1] * 128}, None),
    ("inpaint", {"image": "data:image/png;base64,@@@@", "mask": [0] * 128 + [1] * 128}, None),
    ("inpaint", {"image": "A" * (3 << 20), "mask": [0] * 128 + [1] * 128}, None),
    ("samples", b'{"pad": "' + b"x" * (5 << 20) + b'"}', "application/json"),
    ("upscale", {"image": upload()}, None), ("classify", {"image": upload()}, None),
    ("nosuchwork", {}, None), ("../../etc/passwd", {}, None),
]


def file_hashes(*folders: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def victim(runs, tmp_path_factory):
    """A copy of run g with links out of it: a sample grid, an evaluation record and metrics.jsonl's neighbour."""
    root = tmp_path_factory.mktemp("victim")
    secret = root / "secret.png"
    shutil.copy(runs / "g" / "samples" / "step-0000010.png", secret)
    folder = shutil.copytree(runs / "g", root / "victim")
    (folder / "samples" / "step-0000999.png").symlink_to(secret)
    (folder / "eval" / "step-9999999.json").symlink_to(root / "record.json")
    (root / "record.json").write_text(json.dumps({**EVAL, "step": 9999999}))
    return folder, root


def test_hostile_requests_get_a_4xx_with_a_message_and_change_no_file(victim):
    folder, root = victim
    client = TestClient(make_app(open_runs([folder]), hosts={"testserver"}), raise_server_exceptions=False)
    before = file_hashes(root)
    answers = [(path, client.get(path)) for path in HOSTILE_GET]
    for work, body, kind in HOSTILE_POST:
        kwargs = {"json": body} if kind is None else {"content": body, "headers": {"content-type": kind}}
        answers.append((work, client.post(f"/api/runs/victim/{work}", **kwargs)))
    answers.append(("host", client.get("/api/runs", headers={"host": "evil.example"})))
    for what, r in answers:
        assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:200])
        message = r.json()["error"]
        assert isinstance(message, str) and message and "Traceback" not in message, (what, message)
    assert client.get("/api/runs/victim/grids/10.png").status_code == 200      # the real grid is served
    p = client.get("/api/runs/victim/progress").json()
    assert 999 not in p["grids"] and p["evaluation"] is None                    # the links out are not followed
    assert file_hashes(root) == before


def test_the_upload_reader_refuses_bombs_and_non_images():
    for data, says in ((bomb_png(), "pixels"), (_big_plain_png(), "pixels"), (b"", "empty"), (b"hello", "not an")):
        with pytest.raises(UserError, match=says):
            images.read_upload(data, 1, 16)


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    r = client.post("/api/runs/g/samples", content=b"{}", headers={"content-type": "application/json",
                                                                   "content-length": str(app_mod.MAX_BODY + 1)})
    assert r.status_code == 413 and "MiB" in r.json()["error"]


# ------------------------------------------------------------------------------------------------------------------
# the command


def test_serve_binds_loopback_and_warns_for_other_hosts(runs, caplog):
    srv, sock = server([runs / "g"], "127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1" and sock.getsockname()[1] > 0
        with pytest.raises(UserError, match="choose another --port"):
            server([runs / "g"], "127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
    assert not [r for r in caplog.records if "other machines" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="gankit"):
        srv, sock = server([runs / "g"], "0.0.0.0", 0)
        sock.close()
    assert any("other machines can reach" in r.getMessage() for r in caplog.records)


def test_serve_refuses_what_is_no_run_in_one_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("serve", tmp_path / "empty")
    assert code == 2 and "neither a run folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("serve", tmp_path / "missing")
    assert code == 2 and "is not a folder" in err


def test_the_server_never_loads_the_training_code():
    training = ["gankit.session", "gankit.step", "gankit.guard", "gankit.tasks.table", "gankit.tasks.common",
                *(f"gankit.tasks.{t}.trainer" for t in ("gan", "ssl", "sr", "predict"))]
    code = f"import sys, gankit.serve\nprint(sorted(m for m in {training!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("config,apps", [({"task": "predict", "model": "unet", "data": "moving-mnist"}, ["futures"]),
                                         ({"task": "gan", "model": "wavegan", "data": "fsdd"}, ["explore"]),
                                         ({"task": "gan", "model": "specgan", "data": "fsdd"}, ["explore"]),
                                         ({"task": "gan", "model": "mlp", "data": "ring"}, ["scatter"])])
def test_each_kind_of_run_gets_its_tools_before_any_model_is_loaded(config, apps, tmp_path):
    """Recordings are explored without the arithmetic, 2-D points get a scatter plot, predict runs their futures;
    a predict run has no sampler, a UserError (a 4xx) that says so."""
    from gankit.serve.runs import Run

    run = Run("r", tmp_path, "run", config)
    assert run.apps() == apps
    if config["task"] == "predict":
        with pytest.raises(UserError, match="predicts frames; it has no samples to explore"):
            run.sampler()


# ------------------------------------------------------------------------------------------------------------------
# runs that make recordings, frame sequences and 2-D points

AUDIO = ["--sample_rate", "8000", "--audio_length", "1024", "--z_dim", "8", "--g_width", "4", "--d_width", "4",
         "--batch_size", "6", "--log_every", "1", "--sample_every", "2", "--ckpt_every", "0", "--no-progress"]
# test_tasks_predict's tiny predictor; 150 steps, so that its futures depend on z (an untrained one copies the last frame)
PREDICT = ["--task", "predict", "--model", "unet", "--data", "moving-mnist", "--img_size", "16", "--digits", "1",
           "--frames", "6", "--context", "2", "--horizon", "2", "--n_points", "512", "--holdout", "48", "--z_dim", "4",
           "--g_width", "8", "--d_width", "8", "--batch_size", "16", "--g_lr", "0.002", "--d_lr", "0.001",
           "--adv_weight", "0.1", "--l1_weight", "10", "--log_every", "50", "--sample_every", "1000",
           "--ckpt_every", "0", "--precision", "fp32", "--no-progress", "--steps", "150"]
POINTS = ["--data", "ring", "--model", "mlp", "--z_dim", "2", "--g_width", "8", "--d_width", "8", "--batch_size", "32",
          "--steps", "10", "--log_every", "5", "--sample_every", "10", "--ckpt_every", "0", "--eval_every", "0",
          "--no-progress"]


@pytest.fixture(scope="module")
def others(tmp_path_factory, one_thread):
    """A conditional WaveGAN on three classes of tones, a predictor on moving digits (made of the embedded digits,
    as tests/test_tasks_predict.py makes them, for training and serving alike) and an MLP GAN on the ring."""
    from gankit.data import images as image_data, moving

    root = tmp_path_factory.mktemp("others")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moving, "mnist_digits", lambda data_dir: image_data.load_digits(28, 1))
        train_others(root)
        yield root / "runs"


def train_others(root: Path) -> None:
    """root/runs/wav, pred and ring (with moving.mnist_digits patched by the caller)."""
    import soundfile

    for c, freq in enumerate((300, 600, 900)):
        (root / "tones" / f"tone{c}").mkdir(parents=True)
        for i in range(6):
            t = np.arange(1600) / 8000
            soundfile.write(str(root / "tones" / f"tone{c}" / f"{i}.wav"),
                            (0.5 * np.sin(2 * np.pi * freq * (1 + 0.01 * i) * t)).astype(np.float32), 8000)
    for name, flags in (("wav", ["--data", f"audio:{root / 'tones'}", "--model", "wavegan", *AUDIO, "--cond",
                                 "concat", "--steps", "2"]), ("pred", PREDICT), ("ring", POINTS)):
        assert main(["train", *flags, "--out", str(root / "runs"), "--name", name]) == 0


@pytest.fixture(scope="module")
def other(others):
    return TestClient(make_app(open_runs([others / n for n in ("wav", "pred", "ring")])), raise_server_exceptions=False)


def wav(url: str) -> tuple[np.ndarray, int]:
    import soundfile

    assert url.startswith("data:audio/wav;base64,")
    return soundfile.read(io.BytesIO(base64.b64decode(url.partition(",")[2])), dtype="float32")


def gif(url: str) -> Image.Image:
    assert url.startswith("data:image/gif;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))


def test_recordings_are_heard_as_gankit_sample_writes_them_and_seen_as_spectrograms(other, others, tmp_path):
    from gankit import audio

    info = other.get("/api/runs/wav").json()
    assert (info["apps"], info["makes"], info["sample_rate"], info["audio_length"], info["c_dim"]) == \
        (["explore"], "audio", 8000, 1024, 3)
    got = post(other, "wav", "samples", {"n": 3, "seed": 2, "cls": 1})["samples"]
    assert [g["label"] for g in got] == [1, 1, 1]
    s = sampler_of(other, "wav")
    z, labels, _ = explore.sheet(s, 3, 2, cls=1)
    waves = audio.waveforms(s.G, s.decode(z, labels))                        # (3, 1024)
    for g, w in zip(got, waves):
        clip, rate = wav(g["audio"])
        assert rate == 8000 and clip.shape == (1024,)
        assert np.abs(clip - w.numpy()).max() <= 1 / 32767 + 1e-6            # 16-bit PCM of the same clip
        assert np.array_equal(pixels(g["image"]), np.asarray(audio.spectrogram_image(w, 8000)))
    assert main(["sample", str(others / "wav"), "--seed", "2", "--n", "3", "--class", "1", "--out",
                 str(tmp_path / "clips")]) == 0
    files = sorted((tmp_path / "clips").glob("*.wav"))
    assert [base64.b64decode(g["audio"].partition(",")[2]) for g in got] == [f.read_bytes() for f in files]
    other_class = post(other, "wav", "samples", {"n": 3, "seed": 2, "cls": 2})["samples"]
    assert other_class[0]["z"] == got[0]["z"] and not np.array_equal(wav(other_class[0]["audio"])[0],
                                                                     wav(got[0]["audio"])[0])


def test_a_slider_move_and_a_path_change_the_recording(other):
    g0, g1 = post(other, "wav", "samples", {"n": 2, "seed": 0})["samples"]
    still = post(other, "wav", "decode", {"z": g0["z"], "label": g0["label"], "amounts": [0] * 8})
    assert np.array_equal(wav(still["audio"])[0], wav(g0["audio"])[0])
    moved = post(other, "wav", "decode", {"z": g0["z"], "label": g0["label"], "amounts": [2.5] + [0] * 7})
    assert not np.array_equal(wav(moved["audio"])[0], wav(g0["audio"])[0])
    assert not np.array_equal(pixels(moved["image"]), pixels(g0["image"]))
    start, half = (post(other, "wav", "between", {"a": g0, "b": g1, "t": t}) for t in (0, 0.5))
    assert np.array_equal(wav(start["audio"])[0], wav(g0["audio"])[0])
    assert not np.array_equal(wav(half["audio"])[0], wav(g0["audio"])[0])


def test_futures_of_a_held_out_sequence_are_gankit_predicts(other, others, tmp_path):
    import gankit

    info = other.get("/api/runs/pred").json()
    assert (info["apps"], info["context"], info["horizon"], info["held_out"]) == (["futures"], 2, 2, 48)
    a = post(other, "pred", "futures", {"index": 0, "k": 3, "seed": 1})
    assert a["shape"] == [3, 2, 1, 16, 16] and len(a["futures"]) == 3 and a["source"] == "heldout"
    for url in a["futures"] + [a["truth"]]:
        im = gif(url)
        assert im.n_frames == 4 and im.size == (68, 68)                      # 2 + 2 frames of 16 px shown x4
    assert gif(a["context"]).n_frames == 2 and gif(a["gif"]).size == (4 * 68, 68)   # the truth and 3 futures
    gankit.predict(others / "pred", "heldout", 3, tmp_path / "f", n=1, seed=1)
    assert base64.b64decode(a["gif"].partition(",")[2]) == (tmp_path / "f" / "seq-0000.gif").read_bytes()
    again, b = (post(other, "pred", "futures", {"index": 0, "k": 3, "seed": s}) for s in (1, 2))
    assert again["futures"] == a["futures"] and b["futures"] != a["futures"] and b["truth"] == a["truth"]
    assert post(other, "pred", "futures", {"index": 5, "k": 3, "seed": 1})["truth"] != a["truth"]


def test_futures_of_an_uploaded_context(other):
    frames = (np.random.default_rng(0).random((2, 5, 16, 16)) * 255).astype(np.uint8)
    got = post(other, "pred", "futures", {"context": npz_url(frames=frames), "index": 1, "k": 2})
    assert got["source"] == "upload" and got["truth"] is None and got["shape"] == [2, 2, 1, 16, 16]
    shown = np.asarray(gif(got["context"]).convert("L"))[2:-2, 2:-2][::4, ::4]   # the first context frame, x4
    assert np.abs(shown.astype(int) - frames[1, -2]).max() <= 1                  # the upload's last 2 frames


def test_points_get_the_runs_scatter_plot_of_a_seed(other):
    info = other.get("/api/runs/ring").json()
    assert info["apps"] == ["scatter"] and info["makes"] == "points"
    a, again, b = (post(other, "ring", "scatter", {"n": 300, "seed": s}) for s in (0, 0, 1))
    assert pixels(a["image"]).shape[:2] == (500, 500)                           # viz.save_scatter's 5 x 5 in
    assert a["points"] == again["points"] and a["points"] != b["points"] and len(a["points"]) == 300
    for guide in info["guides"][:1]:
        got = post(other, "ring", "scatter", {"n": 50, "seed": 0, "guide": guide})
        assert got["guide"] == guide and len(got["points"]) == 50


def npz_url(**arrays) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return "data:application/octet-stream;base64," + base64.b64encode(buf.getvalue()).decode()


FRAMES = np.zeros((1, 5, 16, 16), np.uint8)


def pickle_bytes() -> bytes:
    import pickle

    return pickle.dumps({"frames": FRAMES})


HOSTILE_OTHERS = [
    ("pred", "futures", {"index": -1}), ("pred", "futures", {"index": 48}), ("pred", "futures", {"index": "a"}),
    ("pred", "futures", {"k": 0}), ("pred", "futures", {"k": 17}), ("pred", "futures", {"k": 10**9}),
    ("pred", "futures", {"seed": -1}),
    ("pred", "futures", {"context": "@@@@"}), ("pred", "futures", {"context": 5}),
    ("pred", "futures", {"context": "A" * (3 << 20)}),                                      # over 2 MiB
    ("pred", "futures", {"context": b64(b"hello, not a zip")}),
    ("pred", "futures", {"context": b64(pickle_bytes())}),                                   # a bare pickle
    ("pred", "futures", {"context": npz_url(frames=np.array([FRAMES], dtype=object))}),     # a pickled array
    ("pred", "futures", {"context": npz_url(frames=np.zeros((300, 20, 64, 64), np.uint8))}),   # 24 MB unzipped
    ("pred", "futures", {"context": npz_url(frames=FRAMES.astype(np.float32))}),
    ("pred", "futures", {"context": npz_url(frames=FRAMES[:, :1])}),                        # under the context
    ("pred", "futures", {"context": npz_url(frames=np.zeros((1, 5, 16, 16, 3), np.uint8))}),   # 3 channels
    ("pred", "futures", {"context": npz_url(other=FRAMES)}),
    ("pred", "futures", {"context": npz_url(frames=FRAMES), "index": 1}),
    ("pred", "samples", {}), ("pred", "scatter", {}), ("pred", "decode", {"z": Z}),
    ("wav", "arithmetic", {"a": [{"z": Z, "label": 0}], "b": [{"z": Z, "label": 0}], "c": [{"z": Z, "label": 0}]}),
    ("wav", "samples", {"guide": "drs"}), ("wav", "samples", {"cls": 3}), ("wav", "futures", {}),
    ("wav", "scatter", {}), ("ring", "samples", {}), ("ring", "scatter", {"n": 10**6}),
    ("ring", "scatter", {"guide": "sorcery"}), ("ring", "futures", {}),
]


def test_hostile_requests_to_the_new_pages_get_a_4xx_and_change_no_file(others, tmp_path):
    root = shutil.copytree(others, tmp_path / "copy", ignore=shutil.ignore_patterns("tb"))
    with pytest.MonkeyPatch.context() as mp:
        from gankit.data import images as image_data, moving

        mp.setattr(moving, "mnist_digits", lambda data_dir: image_data.load_digits(28, 1))
        client = TestClient(make_app(open_runs([root / n for n in ("wav", "pred", "ring")])),
                            raise_server_exceptions=False)
        before = file_hashes(root)
        for rid, work, body in HOSTILE_OTHERS:
            r = client.post(f"/api/runs/{rid}/{work}", json=body)
            assert 400 <= r.status_code < 500, (rid, work, str(body)[:80], r.status_code, r.text[:200])
            message = r.json()["error"]
            assert isinstance(message, str) and message and "Traceback" not in message, (work, message)
        assert "allow_pickle" in client.post("/api/runs/pred/futures", json=HOSTILE_OTHERS[12][2]).json()["error"]
    assert file_hashes(root) == before
