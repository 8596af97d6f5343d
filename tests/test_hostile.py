"""A corpus of hostile inputs: bad config values and files, bad flags, broken and odd images and IDX files,
truncated, altered and crafted checkpoints and exports, outputs that clash, run folders that cannot be resumed.
Each case is held to the promise of tests/hostile.py (refused in one line with nothing changed, or done and
checked). `test_corpus_size` keeps this corpus at 150 cases or more.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from hostile import Case, Corpus, run_case
import gankit
from gankit import checkpoint
from gankit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = str(Path(gankit.__file__).resolve().parents[1])   # the gankit under test, for subprocesses
RING = ["--data", "ring", "--model", "mlp", "--z_dim", "2", "--g_width", "8", "--d_width", "8", "--g_layers", "1",
        "--d_layers", "1", "--batch_size", "16", "--n_points", "200", "--ckpt_every", "0", "--no-progress"]


CASES = Corpus()
case = CASES.case


# ------------------------------------------------------------------------------------------------------------------
# fixtures: one tiny image run, one 2-D run, an export; copied into a case's folder when the case changes them


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    assert main(["train", *TINY, "--steps", "4", "--log_every", "2", "--out", str(root), "--name", "img"]) == 0
    assert main(["train", *RING, "--steps", "4", "--log_every", "2", "--sample_every", "4", "--out", str(root),
                 "--name", "ring"]) == 0
    assert main(["export", str(root / "img"), "--out", str(root / "exp")]) == 0
    ref = root / "ref.npz"
    assert main(["sample", str(root / "img"), "--n", "8", "--out", str(ref)]) == 0
    return {"img": root / "img", "ring": root / "ring", "exp": root / "exp",
            "ref": np.load(ref)["images"], "state": checkpoint.load(root / "img" / "checkpoints" / "latest.pt")}


def copy_run(fx, w, which="img") -> Path:
    return Path(shutil.copytree(fx[which], w / which))


def ckpt_file(w, fx, state) -> Path:
    """A checkpoint file the user has, holding `state` exactly (torch.save, no checksum added)."""
    path = w / "user.pt"
    torch.save(state, path)
    return path


def same_samples(w, fx):
    got = np.load(w / "s.npz")["images"]
    assert np.array_equal(got, fx["ref"]), "a damaged checkpoint gave other samples without a word"


def npz_ok(n, shape):
    def check(w, fx):
        arr = np.load(w / "s.npz")
        x = arr["images"] if "images" in arr else arr["points"]
        assert x.shape == (n, *shape) and (x.dtype == np.uint8 or np.isfinite(x).all())
        assert x.std() > 0, "all samples alike"
    return check


# ------------------------------------------------------------------------------------------------------------------
# 1. config values, through `train --dry-run` (validation only) ...

BAD_VALUES = {
    "steps": ["0", "-5", "many", "2.5", "1e23", "nan", "inf", "", "1e13"],
    "batch_size": ["0", "-1", "1e9", "x", "true"],
    "seed": ["-1", "4294967296", "1e23", "1.5", "0x10", "1e10"],
    "g_lr": ["0", "-1e-4", "nan", "inf", "-inf", "lr"],
    "d_lr": ["0", "NaN"],
    "beta1": ["1", "-0.1", "nan"],
    "img_size": ["24", "0", "100000"],
    "z_dim": ["0", "1000000"],
    "g_width": ["0", "99999"],
    "model": ["resnet", ""],
    "loss": ["wgan", "NS"],
    "device": ["gpu", "cuda:x", "tpu", "cuda:-1", ""],
    "data": ["imagenet", "folder:", "fake:x"],
    "channels": ["2", "4"],
    "name": ["a/b", "..", ".", "x" * 300, "a\\b"],
    "label_smooth": ["0", "1.5"],
    "ema_decay": ["1", "-0.1"],
    "diffaug": ["blur", "color,,zoom"],
    "pack": ["0", "3"],
    "background": ["mauve", "#12", "#gggggg"],
    "rollback_lr_factor": ["1", "0", "2", "nan"],
    "max_rollbacks": ["-1", "x"],
    "collapse_steps": ["-3"],
    "lr_decay_start": ["1.5", "-0.5"],
    "mbstd": ["maybe", "2"],
    "cond": ["yes"],
    "c_dim": ["1", "5"],
    "eval_n": ["0", "1e8"],
    "precision": ["fp16"],
}
for field, values in BAD_VALUES.items():
    for v in values:
        case(f"config-{field}={v[:12]!r}", lambda w, fx, f=field, v=v: ["train", f"--{f}", v, "--dry-run"],
             needle=field if field not in ("data",) else "data")
case("config-name-not-utf8", lambda w, fx: ["train", "--name", "run\udcff", "--dry-run"], needle="not UTF-8")
case("config-out-not-utf8", lambda w, fx: ["train", "--out", str(w / "r\udce9"), "--dry-run"], needle="not UTF-8")
case("config-data-folder-not-utf8", lambda w, fx: ["train", "--data", f"folder:{w}/\udcff", "--dry-run"],
     needle="not UTF-8")


def dry_ok(w, fx):
    pass


case("config-steps=1e3-is-1000", lambda w, fx: ["train", "--steps", "1e3", "--dry-run"], "ok")
case("config-seed-max", lambda w, fx: ["train", "--seed", str(2**32 - 1), "--dry-run"], "ok")

# ... and through a real start: values only the data can refuse; nothing may be left behind
START = ["train", *TINY, "--steps", "1"]
for label, flags, needle in [
    ("batch-larger-than-data", ["--batch_size", "5000"], "exceeds"),
    ("cond-on-unlabelled", ["--data", "ring", "--model", "mlp", "--cond", "concat"], "no class labels"),
    ("metric-for-points-on-images", ["--eval_metrics", "modes"], "does not apply"),
    ("vbn-ref-larger-than-data", ["--d_norm", "virtual_batch", "--vbn_ref_size", "5000"], "vbn_ref_size"),
    ("cuda-without-cuda", ["--device", "cuda"], "device"),
    ("cuda-7", ["--device", "cuda:7"], "device"),
    ("missing-folder", ["--data", "folder:/no/such/folder"], "does not exist"),
    ("missing-mnist", ["--data", "mnist", "--data_dir", "/no/such/dir"], "train-images"),
    ("wrong-class-count", ["--cond", "concat", "--c_dim", "3"], "classes"),
]:
    case(f"start-{label}", lambda w, fx, f=flags: [*START, *f, "--out", w / "runs"], needle=needle)
case("start-out-is-a-file", lambda w, fx: (w / "runs").write_text("mine") and [*START, "--out", w / "runs"],
     needle="is a file")

# ------------------------------------------------------------------------------------------------------------------
# 2. config files


def yaml_case(name, content: bytes, needle="config", expect="error"):
    def setup(w, fx):
        (w / "c.yaml").write_bytes(content)
        return ["train", "--config", w / "c.yaml", "--dry-run"]
    case(f"yaml-{name}", setup, expect, needle)


yaml_case("not-utf8", b"steps: 10\nname: caf\xe9\n", "not UTF-8")
yaml_case("latin1-bom", b"\xff\xfesteps: 1\n", "not UTF-8")
yaml_case("a-list", b"- steps\n- 10\n", "mapping")
yaml_case("a-scalar", b"hello\n", "mapping")
yaml_case("broken-syntax", b"steps: [1, 2\n", "cannot read")
yaml_case("unknown-key", b"stepz: 10\n", "did you mean steps")
yaml_case("nested-value", b"steps: {a: 1}\n", "steps")
yaml_case("list-value", b"g_lr: [1, 2]\n", "g_lr")
yaml_case("python-tag", b"steps: !!python/object/apply:os.system ['touch pwned']\n", "cannot read")
yaml_case("tab-indent", b"steps:\n\t10\n", "cannot read")
yaml_case("binary", bytes(range(256)) * 4, "config")
yaml_case("nul-bytes", b"steps: 1\x00\x00\n", "config")
yaml_case("int-key", b"1: 2\n", "unknown field")
yaml_case("deep-nesting", b"steps: " + b"[" * 5000 + b"]" * 5000 + b"\n", "config")
yaml_case("null-string-field", b"name: null\n", expect="ok")
yaml_case("empty-file", b"", expect="ok")
yaml_case("nan-value", b"g_lr: .nan\n", "g_lr")
yaml_case("bool-for-int", b"steps: true\n", "steps")
case("yaml-is-a-folder", lambda w, fx: (w / "c.yaml").mkdir() or ["train", "--config", w / "c.yaml", "--dry-run"],
     needle="no file or preset")

# ------------------------------------------------------------------------------------------------------------------
# 3. flags of every command

S = "sample"
for label, argv, needle in [
    ("no-command", [], "required"),
    ("unknown-command", ["fly"], "invalid choice"),
    ("abbreviated-flag", ["train", "--lr", "1"], "unrecognized"),
    ("sample-no-out", [S, "{img}"], "--out"),
    ("sample-n-0", [S, "{img}", "--n", "0", "--out", "{w}/s.npz"], "--n"),
    ("sample-n-negative", [S, "{img}", "--n", "-3", "--out", "{w}/s.npz"], "--n"),
    ("sample-n-huge", [S, "{img}", "--n", "99999999999", "--out", "{w}/s.npz"], "--n"),
    ("sample-n-float", [S, "{img}", "--n", "1e3", "--out", "{w}/s.npz"], "--n"),
    ("sample-seed-huge", [S, "{img}", "--seed", str(2**70), "--out", "{w}/s.npz"], "--seed"),
    ("sample-seed-float", [S, "{img}", "--seed", "1e23", "--out", "{w}/s.npz"], "--seed"),
    ("sample-seed-negative", [S, "{img}", "--seed", "-1", "--out", "{w}/s.npz"], "--seed"),
    ("sample-truncation-0", [S, "{img}", "--truncation", "0", "--out", "{w}/s.npz"], "--truncation"),
    ("sample-truncation-nan", [S, "{img}", "--truncation", "nan", "--out", "{w}/s.npz"], "--truncation"),
    ("sample-truncation-2", [S, "{img}", "--truncation", "2", "--out", "{w}/s.npz"], "--truncation"),
    ("sample-class-unconditional", [S, "{img}", "--class", "3", "--out", "{w}/s.npz"], "conditional"),
    ("sample-class-negative", [S, "{img}", "--class", "-1", "--out", "{w}/s.npz"], "--class"),
    ("sample-class-grid-unconditional", [S, "{img}", "--class-grid", "--out", "{w}/g.png"], "conditional"),
    ("sample-device-gpu", [S, "{img}", "--device", "gpu", "--out", "{w}/s.npz"], "--device"),
    ("sample-device-cuda", [S, "{img}", "--device", "cuda", "--out", "{w}/s.npz"], "CUDA"),
    ("sample-device-cuda-9", [S, "{img}", "--device", "cuda:9", "--out", "{w}/s.npz"], "CUDA"),
    ("sample-device-empty", [S, "{img}", "--device", "", "--out", "{w}/s.npz"], "--device"),
    ("sample-checkpoint-missing", [S, "{img}", "--checkpoint", "999", "--out", "{w}/s.npz"], "steps saved"),
    ("sample-checkpoint-negative", [S, "{img}", "--checkpoint", "-1", "--out", "{w}/s.npz"], "--checkpoint"),
    ("sample-out-txt", [S, "{img}", "--out", "{w}/s.txt"], ".npz"),
    ("sample-sheet-npz", [S, "{img}", "--sheet", "--out", "{w}/s.npz"], "FILE.png"),
    ("sample-sheet-points", [S, "{ring}", "--sheet", "--out", "{w}/s.png"], "image model"),
    ("sample-missing-source", [S, "{w}/nothing", "--out", "{w}/s.npz"], "neither"),
    ("interp-steps-1", ["interpolate", "{img}", "--steps", "1", "--out", "{w}/i"], "at least 2"),
    ("interp-paths-0", ["interpolate", "{img}", "--paths", "0", "--out", "{w}/i"], "--paths"),
    ("interp-too-many", ["interpolate", "{img}", "--paths", "1000", "--steps", "1000", "--out", "{w}/i"], "100,000"),
    ("interp-points", ["interpolate", "{ring}", "--out", "{w}/i"], "image model"),
    ("interp-class-unconditional", ["interpolate", "{img}", "--class", "2", "--out", "{w}/i"], "conditional"),
    ("arith-two-indices", ["arithmetic", "{img}", "--a", "1,2", "--b", "3,4,5", "--c", "6,7,8", "--out",
                           "{w}/a.png"], "three or more"),
    ("arith-letters", ["arithmetic", "{img}", "--a", "x,y,z", "--b", "3,4,5", "--c", "6,7,8", "--out",
                       "{w}/a.png"], "sheet indices"),
    ("arith-repeated", ["arithmetic", "{img}", "--a", "1,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out",
                        "{w}/a.png"], "repeated"),
    ("arith-outside-sheet", ["arithmetic", "{img}", "--a", "0,1,999", "--b", "3,4,5", "--c", "6,7,8", "--out",
                             "{w}/a.png"], "outside the sheet"),
    ("arith-noise-nan", ["arithmetic", "{img}", "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--noise", "nan",
                         "--out", "{w}/a.png"], "--noise"),
    ("arith-noise-inf", ["arithmetic", "{img}", "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--noise", "inf",
                         "--out", "{w}/a.png"], "--noise"),
    ("arith-noise-negative", ["arithmetic", "{img}", "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--noise",
                              "-1", "--out", "{w}/a.png"], "--noise"),
    ("arith-class-unconditional", ["arithmetic", "{img}", "--a", "class:3", "--b", "3,4,5", "--c", "6,7,8",
                                   "--out", "{w}/a.png"], "conditional"),
    ("arith-out-npz", ["arithmetic", "{img}", "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out",
                       "{w}/a.npz"], "FILE.png"),
    ("eval-no-run", ["eval"], "give a run folder"),
    ("eval-unknown-metric", ["eval", "{img}", "--metrics", "nope"], "does not apply"),
    ("eval-image-metric-on-points", ["eval", "{ring}", "--metrics", "fid"], "does not apply"),
    ("eval-bad-features", ["eval", "{img}", "--metrics", "fid", "--features", "nonsense"], "features"),
    ("eval-n-0", ["eval", "{img}", "--n", "0"], "--n"),
    ("eval-not-a-run", ["eval", "{w}"], "not a run folder"),
    ("eval-seed-huge", ["eval", "{img}", "--seed", "99999999999"], "--seed"),
    ("report-missing", ["report", "{w}/nothing"], "not a folder"),
    ("report-not-a-run", ["report", "{w}"], "not a run folder"),
    ("report-out-txt", ["report", "{img}", "--out", "{w}/r.txt"], "FILE.html"),
    ("export-of-export", ["export", "{exp}", "--out", "{w}/e"], "already an export"),
    ("export-checkpoint-7", ["export", "{img}", "--checkpoint", "7", "--out", "{w}/e"], "no checkpoint of step 7"),
    ("bench-reference-mlp", ["bench", "--model", "mlp", "--data", "ring", "--reference"], "--reference"),
    ("bench-rounds-0", ["bench", "--rounds", "0"], "--rounds"),
    ("ablate-unknown-field", ["ablate", "--vary", "nofield=1,2", "--out", "{w}/ab"], "unknown field"),
    ("ablate-no-equals", ["ablate", "--vary", "steps", "--out", "{w}/ab"], "FIELD=V1"),
    ("ablate-bad-variant", ["ablate", "--variant", "nolabel", "--out", "{w}/ab"], "LABEL:"),
    ("ablate-bad-value", ["ablate", "--vary", "steps=0,1", "--out", "{w}/ab"], "steps"),
    ("ablate-summarise-missing", ["ablate", "--summarise", "{w}/nothing"], "ablation folder"),
    ("presets-extra-arg", ["presets", "x"], "unrecognized"),
]:
    case(f"flags-{label}", lambda w, fx, a=argv: [str(x).format(w=w, img=fx["img"], ring=fx["ring"], exp=fx["exp"])
                                                  for x in a], needle=needle)

# ------------------------------------------------------------------------------------------------------------------
# 4. checkpoints: truncated, altered, crafted


def ckpt_case(name, make, needle="checkpoint", expect="error", check=None):
    def setup(w, fx):
        path = make(w, fx)
        return [S, path, "--n", "8", "--out", w / "s.npz"]
    case(f"ckpt-{name}", setup, expect, needle, check)


def _bytes(fx):
    return (fx["img"] / "checkpoints" / "latest.pt").read_bytes()


def _write(w, data: bytes, name="c.pt") -> Path:
    (w / name).write_bytes(data)
    return w / name


for frac in (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999):
    ckpt_case(f"truncated-{frac}", lambda w, fx, f=frac: _write(w, _bytes(fx)[: int(len(_bytes(fx)) * f)]),
              "c.pt")
for frac in (0.3, 0.5, 0.7, 0.8, 0.95):
    def flip(w, fx, f=frac):
        data = bytearray(_bytes(fx))
        data[int(len(data) * f)] ^= 0xFF
        return _write(w, bytes(data))
    # a flipped byte either breaks the file (refused, naming it) or lands where it changes nothing: then the
    # samples must be the original's exactly
    ckpt_case(f"byte-flipped-at-{frac}", flip, "c.pt", "either", same_samples)
ckpt_case("random-bytes", lambda w, fx: _write(w, os.urandom(5000)), "c.pt")
ckpt_case("empty", lambda w, fx: _write(w, b""), "c.pt")
ckpt_case("text", lambda w, fx: _write(w, b"this is not a checkpoint\n" * 20), "c.pt")


def _zip_garbage(w, fx):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", os.urandom(200))
        z.writestr("archive/version", "3\n")
    return _write(w, buf.getvalue())


ckpt_case("zip-of-garbage", _zip_garbage, "c.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


ckpt_case("crafted-pickle", lambda w, fx: _write(w, pickle.dumps({"G": _Evil(), "config": {}})), "c.pt")
ckpt_case("torch-list", lambda w, fx: ckpt_file(w, fx, [1, 2, 3]), "not a gankit checkpoint")
ckpt_case("no-generator", lambda w, fx: ckpt_file(w, fx, {"config": {}, "step": 1}), "not a gankit checkpoint")
ckpt_case("config-not-a-dict", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "config": [1]}), "config")


def _spec(**change):
    def make(w, fx):
        state = dict(fx["state"])
        spec = dict(state["G_spec"])
        for k, v in change.items():
            if v is None:
                spec.pop(k, None)
            else:
                spec[k] = v
        state["G_spec"] = spec
        return ckpt_file(w, fx, state)
    return make


ckpt_case("no-spec", lambda w, fx: ckpt_file(w, fx, {k: v for k, v in fx["state"].items() if k != "G_spec"}),
          "G_spec")
ckpt_case("spec-a-string", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "G_spec": "dcgan"}), "G_spec")
ckpt_case("spec-unknown-arch", _spec(arch="resnet"), "G_spec")
ckpt_case("spec-no-arch", _spec(arch=None), "G_spec")
ckpt_case("spec-huge-width", _spec(width=10**9), "out of range")
ckpt_case("spec-width-string", _spec(width="8"), "out of range")
ckpt_case("spec-negative-z", _spec(z_dim=-4), "out of range")
ckpt_case("spec-extra-argument", _spec(colour="red"), "G_spec")
ckpt_case("spec-other-width", _spec(width=16), "do not fit")
ckpt_case("weights-renamed", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "G": {"x": torch.zeros(1)},
                                                            "G_ema": None}), "do not fit")
ckpt_case("prior-missing", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "config": {
    k: v for k, v in fx["state"]["config"].items() if k != "prior"}}), "prior")
ckpt_case("prior-banana", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "config": {
    **fx["state"]["config"], "prior": "banana"}}), "prior")
ckpt_case("format-2-without-checksum", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "format": 2}), "",
          "ok", same_samples)
ckpt_case("checksum-of-other-contents", lambda w, fx: ckpt_file(w, fx, {**fx["state"], "checksum": "0" * 64}),
          "checksum")


def _latest_is_a_folder(w, fx):
    run = copy_run(fx, w)
    (run / "checkpoints" / "latest.pt").unlink()
    (run / "checkpoints" / "latest.pt").mkdir()
    for f in (run / "checkpoints").glob("step-*.pt"):
        f.unlink()
    return run


ckpt_case("latest-is-a-folder", _latest_is_a_folder, "checkpoint")


def _no_checkpoints(w, fx):
    run = copy_run(fx, w)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    return run


ckpt_case("run-without-checkpoints", _no_checkpoints, "no latest.pt")

# ------------------------------------------------------------------------------------------------------------------
# 5. exports


def export_case(name, damage, needle="cannot load the exported generator"):
    def setup(w, fx):
        exp = Path(shutil.copytree(fx["exp"], w / "exp"))
        damage(exp)
        return [S, exp, "--n", "4", "--out", w / "s.npz"]
    case(f"export-{name}", setup, "error", needle)


def _meta(exp, **change):
    meta = json.loads((exp / "generator.json").read_text())
    meta.update(change)
    (exp / "generator.json").write_text(json.dumps(meta))


export_case("json-broken", lambda e: (e / "generator.json").write_text("{not json"))
export_case("json-a-list", lambda e: (e / "generator.json").write_text("[1, 2]"))
export_case("json-not-utf8", lambda e: (e / "generator.json").write_bytes(b'{"spec": "\xff"}'))
export_case("spec-missing", lambda e: _meta(e, architecture=None, arguments=None, spec=None))
export_case("spec-a-list", lambda e: _meta(e, arguments=[1, 2]))
export_case("spec-huge", lambda e: _meta(e, arguments={**json.loads((e / "generator.json").read_text())["arguments"],
                                                       "width": 10**9}))
export_case("spec-old-format-huge", lambda e: _meta(e, architecture=None, spec={
    **json.loads((e / "generator.json").read_text())["spec"], "width": 10**9}))
export_case("prior-bad", lambda e: _meta(e, prior="banana"))
export_case("weights-truncated", lambda e: (e / "generator.safetensors").write_bytes(
    (e / "generator.safetensors").read_bytes()[:300]))
export_case("weights-random", lambda e: (e / "generator.safetensors").write_bytes(os.urandom(3000)))
export_case("weights-missing", lambda e: (e / "generator.safetensors").unlink())
export_case("weights-header-huge", lambda e: (e / "generator.safetensors").write_bytes(
    struct.pack("<Q", 2**60) + b"{}"))

# ------------------------------------------------------------------------------------------------------------------
# 6. data files: image folders and IDX files


def folder_case(name, make, expect="error", needle="data", check=None, extra=()):
    def setup(w, fx):
        d = w / "imgs"
        d.mkdir()
        make(d)
        return [*START, "--data", f"folder:{d}", "--batch_size", "2", "--out", w / "runs", "--name", "r", *extra]
    case(f"images-{name}", setup, expect, needle, check)


def trained(w, fx):
    state = checkpoint.load(w / "runs" / "r" / "checkpoints" / "latest.pt")
    assert state["step"] == 1 and not checkpoint.nonfinite_parts(state)


def _good(d, n=3, mode="RGB", size=(20, 20), value=128, ext="png"):
    for i in range(n):
        Image.new(mode, size, value if mode in ("L", "1") else (value,) * len(mode)).save(d / f"ok{i}.{ext}")


folder_case("all-garbage", lambda d: [(d / f"{i}.png").write_bytes(os.urandom(300)) for i in range(3)],
            needle="could be read")
folder_case("all-empty", lambda d: [(d / f"{i}.png").write_bytes(b"") for i in range(3)], needle="could be read")
folder_case("no-images", lambda d: (d / "notes.txt").write_text("x"), needle="no images")
folder_case("garbage-and-good", lambda d: (_good(d), (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")), "ok",
            check=trained)
folder_case("truncated-png-and-good", lambda d: (_good(d), (d / "t.png").write_bytes(
    (d / "ok0.png").read_bytes()[:40])), "ok", check=trained)
folder_case("jpeg-named-png", lambda d: [Image.new("RGB", (20, 20), (9, 9, 9)).save(d / f"{i}.png", "JPEG")
                                         for i in range(3)], "ok", check=trained)
folder_case("non-utf8-file-names", lambda d: [Image.new("RGB", (20, 20)).save(d / f"\udcff{i}.png", "PNG")
                                              for i in range(3)], "ok", check=trained)
folder_case("16-bit", lambda d: [Image.fromarray(np.full((20, 20), 60000, np.uint16)).save(d / f"{i}.png")
                                 for i in range(3)], "ok", check=trained)
folder_case("rgba", lambda d: _good(d, mode="RGBA", value=0), "ok", check=trained)
folder_case("cmyk", lambda d: _good(d, mode="CMYK", ext="jpg"), "ok", check=trained)
folder_case("one-pixel", lambda d: _good(d, size=(1, 1)), "ok", check=trained)
folder_case("very-wide", lambda d: _good(d, size=(2000, 1)), "ok", check=trained)


def _gifs(d):
    frames = [Image.new("L", (20, 20), v) for v in (10, 200)]
    for i in range(3):
        frames[0].save(d / f"{i}.gif", save_all=True, append_images=frames[1:])


folder_case("animated-gifs", _gifs, "ok", check=trained)
folder_case("bitonal", lambda d: _good(d, mode="1", value=1), "ok", check=trained)
folder_case("float-tiff-out-of-range", lambda d: [Image.fromarray(np.full((8, 8), 1e9, np.float32)).save(
    d / f"{i}.tif") for i in range(3)], needle="could be read")


def idx_case(name, files: dict, needle):
    def setup(w, fx):
        d = w / "mnist"
        d.mkdir()
        for fname, data in files.items():
            (d / fname).write_bytes(data)
        return [*START, "--data", "mnist", "--data_dir", d, "--out", w / "runs"]
    case(f"idx-{name}", setup, "error", needle)


def _idx(dims, data=b"", kind=0x08):
    return bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">i", d) for d in dims) + data


LABELS = _idx([16], bytes(range(10)) + bytes(6))
IMGS = _idx([16, 28, 28], bytes(16 * 28 * 28))
idx_case("gz-not-gzip", {"train-images-idx3-ubyte.gz": b"not gzip at all", "train-labels-idx1-ubyte": LABELS},
         "gzip")
idx_case("gz-truncated", {"train-images-idx3-ubyte.gz": gzip.compress(IMGS)[:50],
                          "train-labels-idx1-ubyte": LABELS}, "cannot read")
idx_case("255-dimensions", {"train-images-idx3-ubyte": bytes([0, 0, 8, 255]) + bytes(64),
                            "train-labels-idx1-ubyte": LABELS}, "IDX header")
idx_case("zero-dimension", {"train-images-idx3-ubyte": _idx([0, 28, 28]), "train-labels-idx1-ubyte": LABELS},
         "IDX header")
idx_case("truncated-data", {"train-images-idx3-ubyte": IMGS[:-10], "train-labels-idx1-ubyte": LABELS}, "truncated")
idx_case("floats-not-bytes", {"train-images-idx3-ubyte": _idx([16, 28, 28], bytes(16 * 28 * 28 * 4), 0x0D),
                              "train-labels-idx1-ubyte": LABELS}, "unsigned bytes")
idx_case("count-mismatch", {"train-images-idx3-ubyte": IMGS, "train-labels-idx1-ubyte": _idx([9], bytes(9))},
         "labels")
idx_case("header-only", {"train-images-idx3-ubyte": b"\x00\x00", "train-labels-idx1-ubyte": LABELS}, "IDX")

# ------------------------------------------------------------------------------------------------------------------
# 7. outputs that clash


def out_case(name, setup, needle):
    case(f"outputs-{name}", setup, "error", needle)


out_case("sample-npz-exists", lambda w, fx: (w / "s.npz").write_bytes(b"mine") and [S, fx["img"], "--out",
                                                                                    w / "s.npz"], "--force")
out_case("sample-png-exists", lambda w, fx: (w / "g.png").write_bytes(b"mine") and [S, fx["img"], "--out",
                                                                                    w / "g.png"], "--force")
out_case("sample-out-is-a-folder-png", lambda w, fx: (w / "g.png").mkdir() or [S, fx["img"], "--out", w / "g.png"],
         "is a folder")
out_case("sample-folder-is-a-file", lambda w, fx: (w / "dir").write_text("mine") and [S, fx["img"], "--out",
                                                                                     w / "dir"], "dir")
out_case("sample-parent-is-a-file", lambda w, fx: (w / "f").write_text("mine") and [S, fx["img"], "--out",
                                                                                   w / "f" / "s.npz"], "is a file")
out_case("sample-points-png-exists", lambda w, fx: ((w / "pts").mkdir(), (w / "pts" / "points.png").write_bytes(
    b"mine")) and [S, fx["ring"], "--out", w / "pts"], "--force")
out_case("sample-folder-clash", lambda w, fx: ((w / "d").mkdir(), (w / "d" / "00001.png").write_bytes(b"mine"))
         and [S, fx["img"], "--n", "3", "--out", w / "d"], "00001.png exists")
out_case("sheet-exists", lambda w, fx: (w / "sh.png").write_bytes(b"mine") and [S, fx["img"], "--sheet", "--out",
                                                                                w / "sh.png"], "--force")
out_case("export-into-a-file", lambda w, fx: (w / "e").write_text("mine") and ["export", fx["img"], "--out", w / "e"],
         "is a file")
out_case("export-exists", lambda w, fx: ((w / "e").mkdir(), (w / "e" / "generator.json").write_text("mine"))
         and ["export", fx["img"], "--out", w / "e"], "--force")
out_case("interpolate-into-a-file", lambda w, fx: (w / "i").write_text("mine") and ["interpolate", fx["img"],
                                                                                   "--out", w / "i"], "is a file")
out_case("interpolate-gif-exists", lambda w, fx: ((w / "i").mkdir(), (w / "i" / "interpolation.gif").write_text(
    "mine")) and ["interpolate", fx["img"], "--out", w / "i"], "--force")
out_case("arithmetic-npz-exists", lambda w, fx: (w / "a.npz").write_text("mine") and [
    "arithmetic", fx["img"], "--a", "0,1,2", "--b", "3,4,5", "--c", "6,7,8", "--out", w / "a.png"], "--force")
out_case("report-exists", lambda w, fx: (w / "r.html").write_text("mine") and ["report", fx["img"], "--out",
                                                                              w / "r.html"], "--force")
out_case("bench-json-exists", lambda w, fx: (w / "b.json").write_text("mine") and ["bench", "--json", w / "b.json"],
         "--force")
case("outputs-sample-into-missing-folders", lambda w, fx: [S, fx["img"], "--n", "5", "--out", w / "a" / "b" / "s.npz"],
     "ok", check=lambda w, fx: np.load(w / "a" / "b" / "s.npz")["images"].shape == (5, 16, 16, 1) or 1 / 0)
case("outputs-png-into-missing-folders", lambda w, fx: [S, fx["img"], "--out", w / "a" / "g.png"], "ok",
     check=lambda w, fx: Image.open(w / "a" / "g.png").size[0] > 16 or 1 / 0)

# ------------------------------------------------------------------------------------------------------------------
# 8. run folders and resume


def resume_case(name, damage, flags, needle):
    def setup(w, fx):
        run = copy_run(fx, w)
        damage(run)
        return ["train", "--resume", run, *flags, "--no-progress"]
    case(f"resume-{name}", setup, "error", needle)


resume_case("not-a-folder", lambda r: shutil.rmtree(r), [], "not a folder")
resume_case("no-config", lambda r: (r / "config.yaml").unlink(), [], "no config.yaml")
resume_case("config-garbage", lambda r: (r / "config.yaml").write_bytes(b"\xff\xfe\x00garbage"), [], "config")
resume_case("config-edited-loss", lambda r: (r / "config.yaml").write_text(
    (r / "config.yaml").read_text().replace("loss: ns", "loss: hinge")), ["--steps", "9"], "loss")
resume_case("config-edited-invalid", lambda r: (r / "config.yaml").write_text(
    (r / "config.yaml").read_text().replace("batch_size: 16", "batch_size: -3")), ["--steps", "9"], "batch_size")
resume_case("steps-lower", lambda r: None, ["--steps", "2"], "already at step 4")
resume_case("changed-width", lambda r: None, ["--g_width", "16", "--steps", "9"], "cannot change on resume")
resume_case("latest-truncated", lambda r: ((r / "checkpoints" / "latest.pt").unlink(),
                                           (r / "checkpoints" / "latest.pt").write_bytes(b"PK\x03\x04")),
            ["--steps", "9"], "latest.pt")
resume_case("with-config", lambda r: None, ["--config", "digits"],
            "--resume: continues a run with its own config; drop config")
resume_case("with-force", lambda r: None, ["--force"], "--force: replaces a run folder; it cannot go with resume")
case("resume-out-not-utf8", lambda w, fx: ["train", "--resume", w / "r\udcff", "--no-progress"], needle="")
case("run-name-taken", lambda w, fx: copy_run(fx, w) and [*START, "--out", w, "--name", "img"], needle="--resume")


# ------------------------------------------------------------------------------------------------------------------
# the harness


@pytest.mark.parametrize("c", CASES, ids=CASES.ids)
def test_hostile_case(c: Case, fx, tmp_path, capsys, monkeypatch):
    run_case(c, fx, tmp_path, capsys, monkeypatch)


REAL_PROCESS = ["ckpt-crafted-pickle", "yaml-not-utf8", "images-all-garbage", "start-cuda-without-cuda"]


def test_in_a_real_process_too(fx, tmp_path):
    """Some cases again through `python -m gankit`: what a terminal shows (logging, warnings) is one line too."""
    import subprocess
    import sys

    procs = []
    for name in REAL_PROCESS:
        c = next(c for c in CASES if c.name == name)
        w = tmp_path / name
        w.mkdir()
        argv = [str(a) for a in c.setup(w, fx)]
        procs.append((c, subprocess.Popen([sys.executable, "-m", "gankit", *argv], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, cwd=w,
                                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC})))
    for c, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (c.name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("gankit: error:") and c.needle in err, err


def test_corpus_size():
    assert len(CASES) >= 150, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)
