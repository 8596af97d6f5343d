"""Everyday use: runs given by name, every result of a run in one place (eval/, metrics.jsonl, TensorBoard, the
report), plain progress lines, and an export that describes itself."""

import json
import re
import shutil

import pytest
import torch

from conftest import TINY
from gankit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run named by default (dcgan-digits) that evaluates FID at its end, under OUT/runs."""
    out = tmp_path_factory.mktemp("everyday") / "runs"
    assert main(["train", *TINY, "--steps", "10", "--out", str(out), "--eval_metrics", "fid", "--eval_n", "100"]) == 0
    return out / "dcgan-digits"


def test_config_records_the_real_folder_name(run, tmp_path, cli):
    assert "name: dcgan-digits\n" in (run / "config.yaml").read_text()
    assert cli("train", *TINY, "--steps", 1, "--out", tmp_path)[0] == 0
    assert cli("train", *TINY, "--steps", 1, "--out", tmp_path)[0] == 0              # numbered: dcgan-digits-2
    assert "name: dcgan-digits-2\n" in (tmp_path / "dcgan-digits-2" / "config.yaml").read_text()
    ckpt = torch.load(tmp_path / "dcgan-digits-2" / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["config"]["name"] == "dcgan-digits-2"


def test_commands_take_a_run_by_name(run, tmp_path, cli, monkeypatch):
    runs = tmp_path / "elsewhere"
    shutil.copytree(run.parent, runs)
    code, _, err = cli("train", "--resume", "dcgan-digits", "--out", runs, "--steps", 12)
    assert code == 0, err
    assert torch.load(runs / "dcgan-digits" / "checkpoints" / "latest.pt", weights_only=True)["step"] == 12
    code, out, err = cli("sample", "dcgan-digits", "--runs", runs, "--n", 4, "--out", tmp_path / "s.npz")
    assert code == 0 and (tmp_path / "s.npz").is_file(), err
    code, out, err = cli("report", "dcgan-digits", "--runs", runs)
    assert code == 0 and (runs / "dcgan-digits" / "report.html").is_file(), err
    monkeypatch.chdir(runs.parent)                                  # the default --runs is ./runs
    (runs.parent / "runs").mkdir()
    shutil.move(runs / "dcgan-digits", runs.parent / "runs" / "dcgan-digits")
    assert cli("export", "dcgan-digits", "--out", tmp_path / "exp")[0] == 0
    code, _, err = cli("sample", "no-such-run", "--n", 1, "--out", tmp_path / "t.npz")
    assert code == 2 and "no run named 'no-such-run' in runs/" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("train", "--resume", "no-such-run", "--steps", 3)
    assert code == 2 and "no run named 'no-such-run'" in err


def test_every_evaluation_lands_in_eval_metrics_tensorboard_and_the_report(run, tmp_path, cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_copy = tmp_path / "r"
    shutil.copytree(run, run_copy)
    # the evaluation at the end of training
    (first,) = run_copy.glob("eval/step-0000010.json")
    assert json.loads(first.read_text())["results"].keys() >= {"fid", "fid_floor"}
    # one afterwards, by gankit eval
    code, out, err = cli("eval", run_copy, "--metrics", "fid,pr", "--n", 100)
    assert code == 0, err
    rows = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid" in r]
    assert len(evals) == 2 and evals[-1]["event"] == "eval" and "eval/precision_floor" in evals[-1]
    ea = EventAccumulator(str(run_copy / "tb"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    assert [e.step for e in ea.Images("samples")] == [10]           # the sample grid, as an image
    assert len(ea.Scalars("eval/fid")) == 2 and len(ea.Scalars("eval/precision")) == 1
    # the report shows the latest evaluation (gankit eval's: it has precision) with its floors
    assert cli("report", run_copy)[0] == 0
    page = (run_copy / "report.html").read_text()
    section = page[page.index("<h2>Latest evaluation</h2>"): page.index("<h2>Training curves</h2>")]
    record = json.loads((run_copy / "eval" / "step-0000010-2.json").read_text())   # the second of step 10
    prec, floor = record["results"]["precision"], record["results"]["precision_floor"]
    assert f"<td>precision</td><td>{prec:.4g}</td><td>{floor:.4g}</td>" in section
    assert "2 evaluations in eval/" in section


def test_no_progress_prints_a_line_per_record(tmp_path, cli):
    code, _, err = cli("train", *TINY, "--steps", 10, "--out", tmp_path)          # TINY: --no-progress, log_every 5
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("train: step")]
    assert [re.match(r"train: step (\d+)/10", line).group(1) for line in lines] == ["5", "10"]
    assert all("steps/s" in line and "ETA" in line and "loss_d" in line for line in lines)


def test_the_export_describes_itself_and_rebuilds_from_its_folder_alone(tmp_path, cli):
    from gankit.export import load_generator
    from gankit.sample import load_sampler

    assert cli("train", *TINY, "--steps", 2, "--cond", "concat", "--prior", "sphere", "--out", tmp_path,
               "--name", "c")[0] == 0
    want = load_sampler(tmp_path / "c")
    assert cli("export", tmp_path / "c", "--out", tmp_path / "exp")[0] == 0
    shutil.rmtree(tmp_path / "c")                                    # nothing of the run is left
    meta = json.loads((tmp_path / "exp" / "generator.json").read_text())
    assert meta["architecture"] == "dcgan" and meta["class"] == "gankit.models.dcgan.Generator"
    assert meta["arguments"]["img_size"] == 16 and meta["arguments"]["c_dim"] == 10
    assert {k: meta["inputs"]["z"][k] for k in ("shape", "dtype", "prior")} == {"shape": [8], "dtype": "float32",
                                                                                "prior": "sphere"}
    assert meta["inputs"]["y"]["range"] == [0, 9] and meta["inputs"]["y"]["class_names"][3] == "3"
    assert meta["output"]["shape"] == [1, 16, 16] and meta["output"]["range"] == [-1.0, 1.0]
    G = load_generator(tmp_path / "exp")
    z, y = torch.randn(5, 8), torch.arange(5)
    with torch.no_grad():
        x = G(z, y)
    assert list(x.shape[1:]) == meta["output"]["shape"] and x.abs().max() <= 1
    assert torch.equal(x, want.decode(z, y))
    (tmp_path / "exp" / "generator.safetensors").write_bytes(b"not the weights")
    with pytest.raises(Exception, match="SHA-256"):
        load_generator(tmp_path / "exp")
