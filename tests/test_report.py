"""`gankit report`: one self-contained HTML page with the curves, the metrics and the sample grids."""

import base64
import io
import json
import re
import shutil

import pytest
from PIL import Image

from conftest import TINY
from gankit import report
from gankit.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny image run (grids at steps 2 and 4) and a 2-D run (scatter plots at steps 2 and 4)."""
    out = tmp_path_factory.mktemp("report")
    flags = ["--steps", "4", "--log_every", "2", "--sample_every", "2", "--out", str(out)]
    assert main(["train", *TINY, *flags, "--name", "img"]) == 0
    assert main(["train", "--data", "ring", "--model", "mlp", "--z_dim", "2", "--g_width", "8", "--d_width", "8",
                 "--g_layers", "1", "--d_layers", "1", "--batch_size", "16", "--n_points", "500", "--ckpt_every", "0",
                 "--no-progress", *flags, "--name", "ring"]) == 0
    return out / "img", out / "ring"


def _images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in
            re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', page)}


@pytest.mark.parametrize("which", [0, 1])
def test_report_embeds_curves_metrics_and_sample_grids(runs, tmp_path, cli, which):
    run = tmp_path / "run"
    shutil.copytree(runs[which], run)   # this test appends to metrics.jsonl; the shared run stays as trained
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 2, "nimg": 32, "eval/fid": 40.0}) + "\n")
        f.write(json.dumps({"step": 4, "nimg": 64, "eval/fid": 31.5, "eval/pr_precision": 0.5}) + "\n")
    code, out, err = cli("report", run)
    assert code == 0, err
    page = (run / "report.html").read_text()
    assert page.startswith(report.MARKER)
    images = _images(page)
    reals = {"reals"} if which == 0 else set()                                # reals.png: image runs only
    # eval/fid has two points: a chart; eval/pr_precision one: a row of the table of values recorded once
    assert set(images) == {"losses", "D(x) and D(G(z))", "eval/fid", "step 2", "step 4"} | reals
    assert "<tr><td>eval/pr_precision</td><td>4</td><td>0.5</td><td></td></tr>" in page
    for step in (2, 4):  # the run's own PNGs, byte for byte (for the 2-D run: its scatter plots)
        assert images[f"step {step}"] == (run / "samples" / f"step-{step:07d}.png").read_bytes()
    for name in ("losses", "eval/fid"):
        assert Image.open(io.BytesIO(images[name])).format == "PNG"
    assert "z_dim: " in page and "src=\"http" not in page                      # the config; nothing fetched


def test_curves_follow_the_records_and_a_resume():
    rows = [{"step": 2, "nimg": 32, "loss_d": 1.0, "D(x)": 0.6, "sec": 0.1},
            {"step": 4, "nimg": 64, "loss_d": 0.8, "D(x)": 0.7, "sec": 0.2},
            {"step": 2, "nimg": 32, "event": "resume"},                         # resumed from step 2's checkpoint
            {"step": 4, "nimg": 64, "loss_d": 0.9, "D(x)": 0.65, "flag": True},
            {"step": 4, "nimg": 64, "eval/fid": 12.0}]
    curves = report.series(rows)
    assert curves == {"loss_d": ([2, 4], [1.0, 0.9]), "D(x)": ([2, 4], [0.6, 0.65]), "eval/fid": ([4], [12.0])}
    assert report.resumes(rows) == [2]


def test_grids_are_thinned_evenly_with_first_and_last(tmp_path):
    for s in range(0, 100, 5):
        (tmp_path / f"step-{s:07d}.png").write_bytes(b"")
    picked, total = report.pick_grids(tmp_path)
    steps = [s for s, _ in picked]
    assert total == 20 and len(steps) == report.MAX_GRIDS and steps[0] == 0 and steps[-1] == 95
    assert steps == sorted(set(steps))


def test_report_refuses_existing_files_unless_forced(runs, tmp_path, cli):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    code, _, err = cli("report", runs[0], "--out", mine)
    assert code == 2 and "exists; pass --force" in err and mine.read_text() == "<p>my notes</p>"
    page = tmp_path / "r.html"
    assert cli("report", runs[0], "--out", page)[0] == 0
    page.write_text(page.read_text().replace("Samples over time", "EDITED"))
    code, _, err = cli("report", runs[0], "--out", page)                       # the same policy for its own page
    assert code == 2 and "EDITED" in page.read_text()
    assert cli("report", runs[0], "--out", page, "--force")[0] == 0
    assert "EDITED" not in page.read_text() and "Samples over time" in page.read_text()


def test_report_notes_unreadable_lines_and_refuses_non_runs(runs, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "nimg": 9')                                        # a run killed mid-write
    assert cli("report", run)[0] == 0
    assert "1 unreadable line(s)" in (run / "report.html").read_text()
    code, _, err = cli("report", tmp_path / "nothing")
    assert code == 2 and "is not a folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("report", tmp_path / "empty")
    assert code == 2 and "not a run folder" in err


def test_damaged_records_are_named_and_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 2, "loss_d": 1.0}\n{"step": NaN, "loss_d": 2.0}\n\xff\xfe\n{"step": "x"}\n'
                     b'{"step": 4.0, "loss_d": 0.5}\n[1]\n')
    said = []
    rows, bad = report.read_rows(path, warn=said.append)
    assert [r["step"] for r in rows] == [2, 4] and bad == 4
    assert len(said) == 1 and str(path) in said[0]
    assert "line 2: step nan" in said[0] and "line 3: not UTF-8" in said[0] and "and 1 more" in said[0]
    assert report.series(rows)["loss_d"] == ([2, 4], [1.0, 0.5])
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "step-0000002.json").write_text(json.dumps({"step": 2, "results": {"fid": 3.0}}))
    (ev / "step-0000009.json").write_text(json.dumps({"step": "nine", "results": {"fid": 1.0}}))
    said.clear()
    record, n = report.latest_evaluation(ev, warn=said.append)
    assert record["step"] == 2 and n == 1 and "step-0000009.json: step 'nine'" in said[0]
