"""A corpus of hostile files around training: tar shards (`gankit shards`, data: shards:PATH), exports
(generator.json and generator.safetensors), the records that `gankit report` reads (metrics.jsonl, eval/*.json,
config.yaml, samples/), and the tools around training (`gankit ablate`, `gankit bench`). Each case is held to the
promise of tests/hostile.py: refused in one line with nothing changed, or done and checked.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import TINY
from hostile import Corpus, run_case
from gankit import checkpoint
from gankit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = Corpus()
case = CASES.case
N_IMAGES = 8  # per fixture shard folder: two classes of four 16x16 images


# ------------------------------------------------------------------------------------------------------------------
# fixtures: a tiny run, its export and samples; a labelled folder of images packed into two shards


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-files")
    assert main(["train", *TINY, "--steps", "4", "--log_every", "2", "--out", str(root), "--name", "img"]) == 0
    assert main(["export", str(root / "img"), "--out", str(root / "exp")]) == 0
    assert main(["sample", str(root / "exp"), "--n", "4", "--out", str(root / "ref.npz")]) == 0
    imgs = root / "imgs"
    for i in range(N_IMAGES):
        (imgs / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), 30 * i).save(imgs / f"c{i % 2}" / f"{i:03d}.png")
    assert main(["shards", str(imgs), "--out", str(root / "sh"), "--per-shard", "4"]) == 0
    return {"img": root / "img", "exp": root / "exp", "ref": np.load(root / "ref.npz")["images"], "imgs": imgs,
            "sh": root / "sh"}


def png(value: int = 128, size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, "png")
    return buf.getvalue()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A plain tar holding `members` (name, bytes), as webdataset's writers make one."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def labelled(n: int = 4, cls=lambda i: str(i % 2).encode()) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        out.append((f"{i:06d}.png", png(40 * i)))
        if cls is not None:
            out.append((f"{i:06d}.cls", cls(i)))
    return out


def trained(w, fx):
    state = checkpoint.load(w / "runs" / "r" / "checkpoints" / "latest.pt")
    assert state["step"] == 1 and not checkpoint.nonfinite_parts(state)


def trained_with_classes(names):
    def check(w, fx):
        trained(w, fx)
        assert checkpoint.load(w / "runs" / "r" / "checkpoints" / "latest.pt")["class_names"] == names
    return check


# ------------------------------------------------------------------------------------------------------------------
# 1. tar shards: data: shards:PATH (a training start of one step) and `gankit shards`

START = ["train", *TINY, "--steps", "1", "--batch_size", "2", "--name", "r"]


def shard_case(name, make, expect="error", needle="data", check=None, spec=None):
    """make(d) writes the user's shards into the folder d; training reads `spec` (default: the folder)."""
    def setup(w, fx):
        d = w / "sh"
        d.mkdir()
        make(d)
        where = spec(d) if spec else d
        return [*START, "--data", f"shards:{where}", "--out", w / "runs"]
    case(f"shards-{name}", setup, expect, needle, check)


def _one(d, members, name="shard-000000.tar"):
    (d / name).write_bytes(tar_bytes(members))


GOOD = tar_bytes(labelled(4))


def _cut(n):
    def make(d):
        (d / "shard-000000.tar").write_bytes(GOOD[:n])
    return make


# truncated and damaged shards: refused by name, never tarfile.ReadError, never a part read as the whole
shard_case("truncated-in-a-header", _cut(700), needle="truncated")
shard_case("truncated-at-a-header", _cut(1024 + 200), needle="truncated")
shard_case("truncated-in-member-data", _cut(2048 + 512 + 40), needle="truncated")
shard_case("truncated-without-end-block", _cut(len(tar_bytes(labelled(4))) - 10240 + 4096), needle="truncated")
shard_case("damaged-second-header", lambda d: (d / "s.tar").write_bytes(GOOD[:1024] + b"\x7f" * 512 + GOOD[1536:]),
           needle="damaged")
shard_case("gzipped-tar", lambda d: (d / "s.tar").write_bytes(gzip.compress(GOOD)), needle="not a plain tar")
shard_case("zero-bytes", lambda d: (d / "s.tar").write_bytes(b""), needle="is empty")
shard_case("random-bytes", lambda d: (d / "s.tar").write_bytes(bytes(range(256)) * 8), needle="tar")
shard_case("one-truncated-of-two", lambda d: ((d / "a.tar").write_bytes(GOOD), (d / "b.tar").write_bytes(GOOD[:700])),
           needle="b.tar")
# empty shards and members that are not images
shard_case("an-empty-tar", lambda d: _one(d, []), needle="no images")
shard_case("one-empty-tar-of-two", lambda d: (_one(d, labelled(4), "a.tar"), _one(d, [], "b.tar")), "ok",
           check=trained)
shard_case("no-tar-in-folder", lambda d: (d / "notes.txt").write_text("x"), needle="no .tar shards")
shard_case("only-text-members", lambda d: _one(d, [("0.txt", b"a"), ("0.json", b"{}")]), needle="no images")
shard_case("json-beside-each-image", lambda d: _one(d, [m for i in range(3) for m in (
    (f"{i}.png", png(60 * i)), (f"{i}.json", b'{"a": 1}'))]), "ok", check=trained)
shard_case("one-garbage-image", lambda d: _one(d, [("0.png", png(10)), ("1.png", png(200)), ("2.png", b"\x89PNGxx")]),
           "ok", check=trained)
shard_case("all-garbage-images", lambda d: _one(d, [(f"{i}.png", b"not a png") for i in range(3)]),
           needle="could be read")


def _with_links(d):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, data in enumerate((png(10), png(200))):
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("2.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        folder = tarfile.TarInfo("3.png")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    (d / "s.tar").write_bytes(buf.getvalue())


shard_case("symlink-and-folder-members", _with_links, "ok", check=trained)
# class labels (.cls) and classes.txt
shard_case("cls-huge", lambda d: _one(d, labelled(4, lambda i: b"999999999" if i == 1 else b"0")),
           needle="class index 999,999,999")
shard_case("cls-huge-with-classes-txt", lambda d: (_one(d, labelled(4, lambda i: b"999999999" if i else b"0")),
                                                   (d / "classes.txt").write_text("a\nb\n")), needle="names 2 classes")
shard_case("cls-negative", lambda d: _one(d, labelled(4, lambda i: b"-1" if i == 2 else b"0")), needle="negative")
shard_case("cls-float", lambda d: _one(d, labelled(4, lambda i: b"1.5")), needle="not a class index")
shard_case("cls-word", lambda d: _one(d, labelled(4, lambda i: b"cat")), needle="not a class index")
shard_case("cls-empty", lambda d: _one(d, labelled(4, lambda i: b"")), needle="not a class index")
shard_case("cls-not-utf8", lambda d: _one(d, labelled(4, lambda i: b"\xff\xfe")), needle="not a class index")
shard_case("cls-underscore", lambda d: _one(d, labelled(4, lambda i: b"1_0")), needle="not a class index")
shard_case("cls-long-member", lambda d: _one(d, labelled(4, lambda i: b"1" * 5000)), needle="5,000 bytes")
shard_case("cls-some-unlabelled", lambda d: _one(d, labelled(4, lambda i: b"0") + [("9.png", png(5))]),
           needle="label all or none")
shard_case("classes-txt-short-trailing-newline", lambda d: (_one(d, labelled(4, lambda i: str(i % 3).encode())),
                                                            (d / "classes.txt").write_text("cat\ndog\n")),
           needle="names 2 classes")
shard_case("classes-txt-blank-line", lambda d: (_one(d, labelled(4)), (d / "classes.txt").write_text("cat\n\ndog\n")),
           needle="line 2")
shard_case("classes-txt-duplicate", lambda d: (_one(d, labelled(4)), (d / "classes.txt").write_text("cat\ncat\n")),
           needle="twice")
shard_case("classes-txt-not-utf8", lambda d: (_one(d, labelled(4)), (d / "classes.txt").write_bytes(b"caf\xe9\ndog\n")),
           needle="not UTF-8")
shard_case("classes-txt-crlf", lambda d: (_one(d, labelled(4)), (d / "classes.txt").write_bytes(b"cat\r\ndog\r\n\r\n")),
           "ok", check=trained_with_classes(["cat", "dog"]))
shard_case("classes-txt-names-more", lambda d: (_one(d, labelled(4)), (d / "classes.txt").write_text("a\nb\nc\n")),
           "ok", check=trained_with_classes(["a", "b"]))
shard_case("labels-without-classes-txt", lambda d: _one(d, labelled(4)), "ok", check=trained_with_classes(["0", "1"]))
# shard patterns
shard_case("pattern-matching-nothing", lambda d: None, needle="no shard", spec=lambda d: d / "x-{000..003}.tar")
shard_case("pattern-with-a-star", lambda d: _one(d, labelled(4)), needle="not expanded", spec=lambda d: d / "*.tar")
shard_case("pattern-of-a-billion", lambda d: None, needle="more than 100,000",
           spec=lambda d: d / "x-{000000000..999999999}.tar")
shard_case("pattern-of-a-billion-by-lists", lambda d: None, needle="more than 100,000",
           spec=lambda d: d / ("{a,b,c,d,e,f,g,h,i,j}" * 6 + ".tar"))
shard_case("pattern-of-5000-digits", lambda d: None, needle="more than 100,000",
           spec=lambda d: d / ("x-{0.." + "9" * 5000 + "}.tar"))
shard_case("pattern-unbalanced", lambda d: None, needle="cannot expand", spec=lambda d: d / "x-{0..3.tar")
shard_case("pattern-names-a-shard-twice", lambda d: _one(d, labelled(4), "s-0.tar"), needle="twice",
           spec=lambda d: f"{d}/s-{{0..0}}.tar::{d}/s-0.tar")
shard_case("pattern-partly-missing", lambda d: _one(d, labelled(4), "s-0.tar"), needle="(and 2 more)",
           spec=lambda d: d / "s-{0..3}.tar")
shard_case("pattern-of-two", lambda d: (_one(d, labelled(4), "s-0.tar"), _one(d, labelled(4), "s-1.tar")), "ok",
           check=trained, spec=lambda d: d / "s-{0..1}.tar")
case("shards-the-packed-folder", lambda w, fx: [*START, "--data", f"shards:{fx['sh']}", "--out", w / "runs"], "ok",
     check=trained_with_classes(["c0", "c1"]))
case("shards-out-is-a-file", lambda w, fx: (w / "o").write_text("mine") and ["shards", fx["imgs"], "--out", w / "o"],
     needle="is a file")
case("shards-out-holds-shards", lambda w, fx: (shutil.copytree(fx["sh"], w / "o"), ["shards", fx["imgs"], "--out",
                                                                                  w / "o"])[1], needle="exists")
case("shards-folder-missing", lambda w, fx: ["shards", w / "none", "--out", w / "o"], needle="does not exist")
case("shards-folder-without-images", lambda w, fx: ((w / "f").mkdir(), (w / "f" / "a.txt").write_text("x"),
                                                    ["shards", w / "f", "--out", w / "o"])[2], needle="no images")


def _packed_ok(w, fx):
    names = sorted(p.name for p in (w / "o").iterdir())
    assert names == ["classes.txt", "shard-000000.tar", "shard-000001.tar"], names
    assert (w / "o" / "classes.txt").read_text() == "c0\nc1\n"


case("shards-pack", lambda w, fx: ["shards", fx["imgs"], "--out", w / "o", "--per-shard", "4"], "ok", check=_packed_ok)

# ------------------------------------------------------------------------------------------------------------------
# 2. exports: sampling from an altered generator.json or generator.safetensors


def export_case(name, damage, needle="cannot load the exported generator", expect="error", check=None):
    def setup(w, fx):
        exp = Path(shutil.copytree(fx["exp"], w / "exp"))
        damage(exp)
        return ["sample", exp, "--n", "4", "--out", w / "s.npz"]
    case(f"export-{name}", setup, expect, needle, check)


def _meta(exp, change):
    meta = json.loads((exp / "generator.json").read_text())
    change(meta)
    (exp / "generator.json").write_text(json.dumps(meta))


def _tensors(exp, change):
    """Change the weights and record their new SHA-256, as a tool that rewrites an export would."""
    t = load_file(str(exp / "generator.safetensors"))
    save_file(change(t), str(exp / "generator.safetensors"), metadata={"format": "pt"})
    _meta(exp, lambda m: m["weights"].update(sha256=checkpoint.sha256_file(exp / "generator.safetensors")))


def _first(t, suffix="weight"):
    return next(k for k, v in sorted(t.items()) if k.endswith(suffix) and v.is_floating_point() and v.dim() > 1)


def _set(key_of, fn):
    def change(t):
        k = key_of(t)
        t[k] = fn(t[k])
        return t
    return change


def same_samples(w, fx):
    assert np.array_equal(np.load(w / "s.npz")["images"], fx["ref"]), "an export gave other samples without a word"


export_case("intact", lambda e: None, expect="ok", check=same_samples)
export_case("checksum-removed", lambda e: _meta(e, lambda m: m["weights"].pop("sha256")), "records no SHA-256")
export_case("checksum-null", lambda e: _meta(e, lambda m: m["weights"].update(sha256=None)), "records no SHA-256")
export_case("checksum-not-hex", lambda e: _meta(e, lambda m: m["weights"].update(sha256="abc")), "records no SHA-256")
export_case("weights-record-a-string", lambda e: _meta(e, lambda m: m.update(weights="generator.safetensors")),
            "records no SHA-256")
export_case("checksum-removed-weights-altered", lambda e: (
    _tensors(e, _set(_first, lambda v: v * 1.5)), _meta(e, lambda m: m["weights"].pop("sha256"))), "re-export")
export_case("checksum-of-other-weights", lambda e: _meta(e, lambda m: m["weights"].update(sha256="0" * 64)),
            "does not match")
export_case("weights-nan", lambda e: _tensors(e, _set(_first, lambda v: v.index_fill(0, torch.tensor([0]), math.nan))),
            "NaN or infinity")
export_case("weights-inf", lambda e: _tensors(e, _set(_first, lambda v: v.index_fill(0, torch.tensor([0]), math.inf))),
            "NaN or infinity")
export_case("running-var-negative", lambda e: _tensors(e, _set(lambda t: next(k for k in sorted(t)
                                                                               if k.endswith("running_var")),
                                                               lambda v: -torch.ones_like(v))), "NaN or infinity")
export_case("weights-wrong-shape", lambda e: _tensors(e, _set(_first, lambda v: v[:1].clone())), "has shape")
export_case("weights-float16", lambda e: _tensors(e, _set(_first, lambda v: v.half())), "is float16")
export_case("weights-float64", lambda e: _tensors(e, _set(_first, lambda v: v.double())), "is float64")
export_case("weights-int64", lambda e: _tensors(e, _set(_first, lambda v: v.long())), "is int64")
export_case("weights-extra-tensor", lambda e: _tensors(e, lambda t: {**t, "backdoor": torch.zeros(3)}),
            "has not (backdoor)")
export_case("weights-missing-tensor", lambda e: _tensors(e, lambda t: {k: v for k, v in t.items() if k != _first(t)}),
            "lacks 1 tensor")
export_case("weights-none-left", lambda e: _tensors(e, lambda t: {"x": torch.zeros(1)}), "lacks")
export_case("architecture-unknown", lambda e: _meta(e, lambda m: m.update(architecture="resnet9000")),
            "unknown architecture 'resnet9000'")
export_case("old-spec-architecture-unknown", lambda e: _meta(e, lambda m: (m.update(architecture=None),
                                                                          m["spec"].update(arch="vit"))),
            "unknown architecture 'vit'")
export_case("argument-unknown", lambda e: _meta(e, lambda m: m["arguments"].update(colour="red")), "colour")
export_case("weights-file-outside", lambda e: _meta(e, lambda m: m["weights"].update(file="../../img/config.yaml")),
            "config.yaml is missing")
export_case("class-names-a-string", lambda e: _meta(e, lambda m: m.update(class_names="0123")),
            "class_names is not a list")


def _format_1(m):
    """generator.json as gankit wrote it before format 2: the spec, no architecture and no checksum."""
    for k in ("architecture", "arguments", "weights"):
        m.pop(k)
    m["format_version"] = 1


export_case("format-1-without-checksum", lambda e: _meta(e, _format_1), expect="ok", check=same_samples)
export_case("format-1-nan", lambda e: (_tensors(e, _set(_first, lambda v: v * math.nan)), _meta(e, _format_1)),
            "NaN or infinity")

# ------------------------------------------------------------------------------------------------------------------
# 3. records: what `gankit report` reads


def report_case(name, damage, expect="ok", needle="", lines=0):
    """damage(run) changes a copy of the run; a done case's page must hold the curves of the good lines and say
    how many lines of metrics.jsonl it skipped."""
    def setup(w, fx):
        run = Path(shutil.copytree(fx["img"], w / "img"))
        damage(run)
        return ["report", run, "--out", w / "r.html"]

    def check(w, fx):
        page = (w / "r.html").read_text(encoding="utf-8")
        assert 'alt="losses"' in page, "the good records were lost"
        assert (f"{lines} unreadable line(s)" in page) if lines else ("unreadable line" not in page)
        assert "<script>" not in page
    case(f"report-{name}", setup, expect, needle, check if expect == "ok" else None)


def _append(text: bytes):
    def damage(run):
        with open(run / "metrics.jsonl", "ab") as f:
            f.write(text)
    return damage


def _eval(record: dict | bytes, name="step-0000004.json"):
    def damage(run):
        (run / "eval").mkdir(exist_ok=True)
        (run / "eval" / "step-0000002.json").write_text(json.dumps({"step": 2, "results": {"fid": 9.0}}))
        (run / "eval" / name).write_bytes(record if isinstance(record, bytes) else json.dumps(record).encode())
    return damage


report_case("step-nan", _append(b'{"step": NaN, "loss_d": 1.0}\n'), lines=1)
report_case("step-infinity", _append(b'{"step": Infinity, "loss_d": 1.0}\n'), lines=1)
report_case("step-negative", _append(b'{"step": -3, "loss_d": 1.0}\n'), lines=1)
report_case("step-a-string", _append(b'{"step": "4", "loss_d": 1.0}\n'), lines=1)
report_case("step-a-fraction", _append(b'{"step": 2.5, "loss_d": 1.0}\n'), lines=1)
report_case("step-true", _append(b'{"step": true, "loss_d": 1.0}\n'), lines=1)
report_case("step-1e300", _append(b'{"step": 1e300, "loss_d": 1.0}\n'), lines=1)
report_case("step-missing", _append(b'{"loss_d": 1.0}\n'), lines=1)
report_case("line-not-utf8", _append(b'{"step": 6, "loss_d": 1.0, "note": "caf\xe9"}\n'), lines=1)
report_case("line-a-list", _append(b"[1, 2, 3]\n"), lines=1)
report_case("line-deeply-nested", _append(b"[" * 100000 + b"]" * 100000 + b"\n"), lines=1)
report_case("value-400-digits", _append(b'{"step": 6, "loss_d": 1' + b"0" * 400 + b"}\n"), lines=1)
report_case("half-a-line-and-garbage", _append(b'{"step": 6, "nimg": 9\n\x00\x01\x02\n'), lines=2)
report_case("loss-infinite", _append(b'{"step": 6, "loss_d": Infinity, "loss_g": NaN}\n'))
report_case("eval-step-a-string", _eval({"step": "four", "results": {"fid": 1.0}}))
report_case("eval-step-nan", _eval(b'{"step": NaN, "results": {"fid": 1.0}}'))
report_case("eval-step-negative", _eval({"step": -4, "results": {"fid": 1.0}}))
report_case("eval-not-utf8", _eval(b'{"step": 4, "results": {"fid": 1.0}, "run": "\xff"}'))
report_case("eval-results-a-list", _eval({"step": 4, "results": [1, 2]}))
report_case("eval-not-json", _eval(b"{{{"))
report_case("eval-html-in-fields", _eval({"step": 4, "n": "<script>", "seed": "<script>", "features": "<script>",
                                          "results": {"<script>": "<script>"}}))
report_case("config-not-utf8", lambda r: (r / "config.yaml").write_bytes(b"name: caf\xe9\n"))
report_case("sample-grid-a-folder", lambda r: (r / "samples" / "step-0000099.png").mkdir())
report_case("metrics-all-garbage-but-one", lambda r: (r / "metrics.jsonl").write_bytes(
    b"\xff\xfe\x00\n" * 3 + b'{"step": 2, "loss_d": 1.0, "loss_g": 2.0}\n'), lines=3)


# ------------------------------------------------------------------------------------------------------------------
# 4. tools around training: ablate and bench

ABL = ["ablate", "--data", "ring", "--model", "mlp", "--steps", "2", "--seeds", "2", "--name", "a"]


def ablate_case(name, flags, needle):
    case(f"ablate-{name}", lambda w, fx, f=flags: [*ABL, *f, "--out", w], needle=needle)


ablate_case("vary-seed-twice", ["--vary", "seed=5,5"], "seed is not a field")
ablate_case("vary-seed", ["--vary", "seed=0,1"], "--seeds")
ablate_case("variant-seed", ["--variant", "a:seed=1", "--variant", "b:seed=2"], "--seeds")
ablate_case("base-seed", ["--seed", "3", "--vary", "pack=1,2"], "seed 3 in the base")
ablate_case("value-twice", ["--vary", "pack=1,2,1"], "1 given twice")
ablate_case("same-config-two-spellings", ["--vary", "g_lr=1e-3,0.001"], "same config")
ablate_case("same-config-as-base", ["--variant", "base:", "--variant", "plain:pack=1"], "same config")
ablate_case("no-values", ["--vary", "pack="], "names no value")
ablate_case("only-commas", ["--vary", "pack=,,"], "names no value")
ablate_case("two-axes-one-field", ["--vary", "lr=1e-4,2e-4", "--vary", "g_lr=1e-3,2e-3"], "set by two axes")
ablate_case("variant-label-twice", ["--variant", "a:pack=1", "--variant", "a:pack=2"], "given twice")


def abl_folder(w, meta=None, lines=b"", seeds=(0, 1)) -> Path:
    """An ablation folder as `gankit ablate` leaves one: ablation.json and a run per (cell, seed)."""
    folder = w / "abl"
    cells = [{"name": "pack=1", "values": {"pack": "1"}}, {"name": "pack=2", "values": {"pack": "2"}}]
    (folder / "runs").mkdir(parents=True)
    (folder / "ablation.json").write_bytes(meta if meta is not None else json.dumps(
        {"base": {}, "cells": cells, "seeds": list(seeds)}).encode())
    for ci in range(2):
        for s in seeds:
            run = folder / "runs" / f"c{ci:02d}-s{s}"
            (run / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run / "checkpoints" / "latest.pt").write_bytes(b"")
            (run / "metrics.jsonl").write_bytes(
                json.dumps({"step": 2, "sec": 1.0, "eval/modes": 2.0 + ci + s}).encode() + b"\n"
                + (lines if (ci, s) == (0, 1) else b""))
    return folder


def summarise_case(name, make, expect="ok", needle="", check=None):
    case(f"ablate-summarise-{name}", lambda w, fx: ["ablate", "--summarise", make(w)], expect, needle, check)


def _table_ok(w, fx):
    rows = {r.split("|")[1].strip(): r for r in (w / "abl" / "table.md").read_text().splitlines()
            if r.startswith("| pack")}
    assert "2.5 ± 0.5" in rows["pack=1"] and "3.5 ± 0.5" in rows["pack=2"], rows


summarise_case("intact", abl_folder, check=_table_ok)
summarise_case("damaged-line-in-a-run", lambda w: abl_folder(w, lines=b'{"step": 3, "eval/mo\n'), check=_table_ok)
summarise_case("not-utf8-line-in-a-run", lambda w: abl_folder(w, lines=b"\xff\xfe garbage\n"), check=_table_ok)
summarise_case("list-line-in-a-run", lambda w: abl_folder(w, lines=b"[1]\n"), check=_table_ok)
summarise_case("ablation-json-broken", lambda w: abl_folder(w, meta=b'{"cells": ['), "error",
               "ablation.json is damaged")
summarise_case("ablation-json-not-utf8", lambda w: abl_folder(w, meta=b"\xff\xfe"), "error", "not UTF-8 JSON")
summarise_case("ablation-json-no-cells", lambda w: abl_folder(w, meta=b'{"seeds": [0]}'), "error", "not the cells")
summarise_case("ablation-json-cells-strings", lambda w: abl_folder(w, meta=b'{"cells": ["a"], "seeds": [0]}'),
               "error", "not the cells")
summarise_case("ablation-json-seed-twice", lambda w: abl_folder(w, seeds=(0, 0)), "error", "seed 0 is named twice")
summarise_case("ablation-json-cell-twice", lambda w: abl_folder(w, meta=json.dumps(
    {"cells": [{"name": "a", "values": {}}] * 2, "seeds": [0]}).encode()), "error", "setting a is named twice")
summarise_case("not-an-ablation", lambda w: w, "error", "no ablation.json")

BENCH = ["bench", "--data", "digits", "--holdout", "100", "--img_size", "16", "--z_dim", "8", "--g_width", "8",
         "--d_width", "8", "--batch_size", "8", "--timed-steps", "1", "--rounds", "1", "--warmup", "1"]


def bench_of(task):
    def check(w, fx):
        record = json.loads((w / "b.json").read_text())
        assert record["config"]["task"] == task and record["results"]["gankit"]["img_per_sec"] > 0
    return check


case("bench-sr-times-its-own-step", lambda w, fx: [*BENCH, "--config", "mnist-sr", "--json", w / "b.json"], "ok",
     check=bench_of("sr"))
case("bench-sr-with-reference", lambda w, fx: [*BENCH, "--config", "mnist-sr", "--reference"], needle="task sr")
case("bench-ssl-times-its-own-step", lambda w, fx: [*BENCH, "--config", "mnist-ssl", "--json", w / "b.json"], "ok",
     check=bench_of("ssl"))
case("bench-ssl-with-reference", lambda w, fx: [*BENCH, "--config", "mnist-ssl", "--reference"],
     needle="task ssl is timed on its own")
case("bench-json-exists", lambda w, fx: (w / "b.json").write_text("mine") and [*BENCH, "--config", "mnist-sr",
                                                                              "--json", w / "b.json"], needle="--force")


# ------------------------------------------------------------------------------------------------------------------
# the harness


@pytest.mark.parametrize("c", CASES, ids=CASES.ids)
def test_hostile_case(c, fx, tmp_path, capsys, monkeypatch):
    run_case(c, fx, tmp_path, capsys, monkeypatch)


def test_corpus_size():
    assert len(CASES) >= 100, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)
