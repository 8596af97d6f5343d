"""Property-based tests (hypothesis) over CLI arguments, config values and generated hostile files.

The property everywhere: a command ends with exit 0 and a checked result, or with exit 2 and exactly one line on
stderr; it never raises (a traceback), and it never changes a file that was there before.
"""

from __future__ import annotations

import contextlib
import io
import os
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import TINY
from gankit import config as config_mod
from gankit import data
from gankit.cli import main
from gankit.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("props")
    assert main(["train", *TINY, "--steps", "2", "--out", str(out), "--name", "r"]) == 0
    assert main(["sample", str(out / "r"), "--n", "4", "--out", str(out / "ref.npz")]) == 0
    return out / "r", np.load(out / "ref.npz")["images"]


def _call(argv, capsys, with_out: bool = False):
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return (code, out, err) if with_out else (code, err)


def _one_line(code, err):
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(("gankit: error:", "gankit ")), err


@contextlib.contextmanager
def _inside(folder: Path):
    """cwd = folder for the block (contextlib.chdir needs Python 3.11)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _unchanged(before: dict) -> None:
    for p, data_ in before.items():
        assert p.exists() and p.read_bytes() == data_, f"{p} changed"


VALUES = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=string.digits + "-+.eE", max_size=8),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "none", "", "nan", "1e3", "1e23", "0x10", "cuda:0", "folder:", "\udcff"]),
)


@settings(max_examples=250, **SETTINGS)
@given(field=st.sampled_from(sorted(config_mod.FIELDS)), value=VALUES)
def test_any_config_value_is_accepted_validly_or_refused_in_one_line(field, value, capsys, tmp_path):
    with _inside(tmp_path):
        code, out, err = _call(["train", f"--{field}={value}", "--dry-run"], capsys, with_out=True)
    _one_line(code, err)
    if code == 0:   # accepted: the printed config holds the value and loads back as the same valid config
        printed = yaml.safe_load(out)
        assert printed[field] == config_mod.coerce(field, value)
        assert config_mod.load(None, printed) == config_mod.load(None, {field: value})
    assert not any(tmp_path.iterdir()), "a dry run wrote files"


YAML_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(), st.text(max_size=10),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                              max_size=2))


@settings(max_examples=120, **SETTINGS)
@given(content=st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.one_of(st.sampled_from(sorted(config_mod.FIELDS)), st.text(max_size=6)), YAML_VALUES,
                    max_size=4).map(lambda d: yaml.safe_dump(d).encode()),
))
def test_any_config_file_is_read_or_refused_in_one_line(content, capsys, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    code, err = _call(["train", "--config", f, "--dry-run"], capsys)
    _one_line(code, err)
    assert f.read_bytes() == content


COMMANDS = ["sample", "interpolate", "arithmetic", "export", "report"]
FLAGS = st.sampled_from(["--n", "--seed", "--class", "--truncation", "--checkpoint", "--device", "--paths",
                         "--steps", "--a", "--b", "--c", "--noise", "--neighbours", "--sheet-n", "--class-n",
                         "--sheet", "--class-grid", "--out", "--onnx-not-a-flag", "-x"])
ARG_VALUES = st.one_of(st.sampled_from(["0", "1", "3", "-1", "1e9", "nan", "inf", "0.5", "cpu", "cuda", "gpu",
                                        "0,1,2", "3,4,5", "class:2", "1,1", "", "x.png", "x.npz", "d", "x.txt",
                                        "user.txt", "r.html", "sub/deeper/y.png"]),
                       st.text(max_size=6))


@settings(max_examples=60, **SETTINGS)
@given(command=st.sampled_from(COMMANDS), source=st.sampled_from(["run", "missing", "user.txt", "ckpt"]),
       flags=st.lists(st.tuples(FLAGS, ARG_VALUES), max_size=5))
def test_any_command_line_ends_in_a_result_or_one_line(command, source, flags, run, capsys, tmp_path):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    (work / "user.txt").write_text("the user's file")
    src = {"run": run[0], "missing": work / "missing", "user.txt": work / "user.txt",
           "ckpt": run[0] / "checkpoints" / "latest.pt"}[source]
    argv = [command, src]
    for flag, value in flags:
        argv += [flag] if flag in ("--sheet", "--class-grid") else [flag, value]
    if "--out" not in argv:
        argv += ["--out", work / "o.png" if command in ("arithmetic", "report") else work / "o"]
    if command == "report":
        argv[1] = run[0]
    before = {**_snapshot(work), **_snapshot(run[0])}
    with _inside(work):
        code, err = _call(argv, capsys)
    _one_line(code, err)
    _unchanged(before)


@settings(max_examples=60, **SETTINGS)
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3))
def test_any_damaged_checkpoint_is_refused_or_gives_the_same_samples(cut, flips, run, capsys, tmp_path):
    good = (run[0] / "checkpoints" / "latest.pt").read_bytes()
    damaged = bytearray(good)
    for where, xor in flips:
        damaged[min(int(where * len(good)), len(good) - 1)] ^= xor
    if cut < 0.5:
        damaged = damaged[: int(cut * 2 * len(good))]
    f = Path(tempfile.mkdtemp(dir=tmp_path)) / "c.pt"
    f.write_bytes(bytes(damaged))
    code, err = _call(["sample", f, "--n", "4", "--out", f.parent / "s.npz"], capsys)
    _one_line(code, err)
    if code == 0:   # damage that changed nothing that matters: exactly the same samples, never other ones
        assert np.array_equal(np.load(f.parent / "s.npz")["images"], run[1])


def _image_bytes(kind: str) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8))
    if kind == "gif":
        im.save(buf, "GIF", save_all=True, append_images=[im.rotate(90)])
    else:
        im.save(buf, kind.upper())
    return buf.getvalue()


@settings(max_examples=80, **SETTINGS)
@given(kind=st.sampled_from(["png", "jpeg", "gif", "bmp", "tiff", "webp"]), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_any_damaged_image_is_skipped_or_decoded(kind, cut, flips, tmp_path):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    Image.new("RGB", (12, 12), (10, 200, 30)).save(folder / "good.png")
    raw = bytearray(_image_bytes(kind))
    for where, xor in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] ^= xor
    if cut < 0.5:
        raw = raw[: int(cut * 2 * len(raw))]
    (folder / f"bad.{'jpg' if kind == 'jpeg' else kind}").write_bytes(bytes(raw))
    try:
        ds = data.load(f"folder:{folder}", img_size=16)
    except UserError:
        pytest.fail("the good image alone must make a data set")
    assert len(ds) in (1, 2) and ds.x.dtype == torch.uint8 and ds.x.shape[1:] == (3, 16, 16)
