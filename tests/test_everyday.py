"""Everyday use: runs given by name, every result of a run in one place (eval/, metrics.jsonl, TensorBoard, the
report), plain progress lines, and an export that describes itself; defaults that follow the data (an EMA that warms
up, a folder's image size and classes), runs to compare (`gankit runs`, the best checkpoint), the Python API as a
notebook uses it, and a report that reads well after one evaluation or none."""

import json
import logging
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, TINY
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


# ------------------------------------------------------------------------------------------------------------------
# EMA warm-up: presets, folder runs, and the warning when the average is still mostly its initial weights


def test_every_gan_preset_with_an_average_warms_it_up_and_folder_runs_keep_one():
    from gankit import config, step

    for name in config.presets():
        cfg = config.load(name)
        if cfg.ema_decay:                           # every task's step applies ema_rampup
            assert cfg.ema_rampup > 0, name
            assert config.ema_initial_share(cfg.ema_decay, cfg.ema_rampup, 100) < 0.5, name
    folder = config.load(None, {"data": "folder:somewhere"})
    assert (folder.ema_decay, folder.ema_rampup) == (0.999, 0.05)
    assert config.load(None, {"data": "folder:x", "ema_decay": 0}).ema_decay == 0     # off when asked
    assert config.load(None, {}).ema_decay == 0                                        # the digits default keeps none
    for decay, rampup in ((0.995, 0.0), (0.999, 0.05), (0.99, 2.0), (0.9, 0.5)):      # the step's own decays
        cfg = config.load(None, {"ema_decay": decay, "ema_rampup": rampup})
        want = math.prod(step.ema_decay(cfg, k) for k in range(300))
        assert config.ema_initial_share(decay, rampup, 300) == pytest.approx(want, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("task", ["sr", "ssl"])
def test_the_applications_warm_their_average_up(task, tmp_path, cli):
    """With ema_rampup the first steps' average is the net itself (horizon 1); without, it is still mostly the
    starting weights: sr averages G, ssl averages D (its classifier)."""
    from test_hostile_apps import SR, SSL

    flags, net = (SR, "G") if task == "sr" else (SSL, "D")
    gap = {}
    for rampup in (0.05, 0):
        assert cli("train", *flags, "--steps", 4, "--ema_decay", 0.999, "--ema_rampup", rampup, "--out", tmp_path,
                   "--name", f"{task}-{rampup}")[0] == 0
        ck = torch.load(tmp_path / f"{task}-{rampup}" / "checkpoints" / "latest.pt", map_location="cpu",
                        weights_only=False)
        avg = ck[f"{net}_ema"]
        gap[rampup] = max((avg[k].float() - v.float()).abs().max().item() for k, v in ck[net].items()
                          if v.is_floating_point() and k in avg)
    assert gap[0.05] < 1e-6 < gap[0]


def test_an_average_still_mostly_its_start_is_said_at_the_end_and_when_loaded(tmp_path, cli, caplog):
    import gankit

    caplog.set_level(logging.WARNING, "gankit")
    assert cli("train", *TINY, "--steps", 4, "--ema_decay", 0.995, "--out", tmp_path, "--name", "cold")[0] == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ema:")]
    assert len(said) == 1 and "after 4 steps" in said[0] and "98%" in said[0] and "ema_rampup" in said[0]
    caplog.clear()
    assert cli("sample", tmp_path / "cold", "--n", 2, "--out", tmp_path / "s.npz")[0] == 0
    gankit.load(tmp_path / "cold")
    assert sum(r.getMessage().startswith("ema: latest.pt: after 4 steps") for r in caplog.records) == 2
    caplog.clear()
    assert cli("train", *TINY, "--steps", 4, "--ema_decay", 0.995, "--ema_rampup", 0.05, "--out", tmp_path,
               "--name", "warm")[0] == 0
    gankit.load(tmp_path / "warm")
    assert not [r for r in caplog.records if r.getMessage().startswith("ema:")]


# ------------------------------------------------------------------------------------------------------------------
# the Python API as a notebook uses it


def _docs_block() -> str:
    text = (REPO / "docs" / "using.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index("## From Python"):], re.S).group(1)


def test_the_notebook_block_is_right_when_its_cell_runs_again(tmp_path, monkeypatch, cli):
    import gankit
    from gankit import api

    monkeypatch.chdir(tmp_path)
    tiny = {"img_size": 16, "z_dim": 8, "g_width": 8, "d_width": 8, "batch_size": 16}   # the block's flow, small
    monkeypatch.setattr(gankit, "load_config", lambda source, **fields: api.load_config(source, **fields, **tiny))
    assert cli("train", *TINY, "--steps", 1, "--out", "runs", "--name", "mlp-digits")[0] == 0   # the first run
    scope = {}
    exec(compile(_docs_block(), "docs/using.md (From Python)", "exec"), scope)      # the cell, run a second time
    assert scope["run"] == Path("runs", "mlp-digits-2")
    assert torch.load(Path("runs/mlp-digits-2/checkpoints/latest.pt"), weights_only=True)["step"] == 150
    assert torch.load(Path("runs/mlp-digits/checkpoints/latest.pt"), weights_only=True)["step"] == 1   # untouched
    assert scope["picture"].size == (8 * 18 + 2, 2 * 18 + 2)                                 # gankit.show's grid
    assert (Path("runs/mlp-digits-2/eval/step-0000100.json")).is_file()


def test_classes_by_index_or_name_with_errors_in_python_terms(tmp_path):
    import numpy as np

    import gankit
    from gankit.errors import UserError

    fields = {k.lstrip("-"): v for k, v in zip(TINY[::2], TINY[1::2]) if k != "--no-progress"}
    cond = gankit.train(gankit.load_config(None, **fields, cond="concat"), steps=2, out=str(tmp_path), name="c",
                        progress=False)
    sampler = gankit.load(cond)
    for cls in (3, "3", np.int64(3)):
        _, labels = sampler(4, cls=cls)
        assert labels.tolist() == [3] * 4
    for bad, needle in (("seven", "is not a class of this G"), (2.5, "expected a class index (int) or a class name"),
                        (10, "give an index in 0..9")):
        with pytest.raises(UserError, match=re.escape(needle)) as e:
            sampler(2, cls=bad)
        assert str(e.value).startswith("cls: ") and "--" not in str(e.value) and "'3'" in str(e.value)
    plain = gankit.train(gankit.load_config(None, **fields), steps=2, out=str(tmp_path), name="u", progress=False)
    with pytest.raises(UserError, match=r"trained without classes, though its data has 10 .*: train with cond "
                                        "projection"):
        gankit.load(plain)(2, cls=3)
    with pytest.raises(UserError) as e:                                   # the run folder's own message, in Python
        gankit.train(gankit.load_config(None, **fields), steps=2, out=str(tmp_path), name="u", progress=False)
    assert "force=True" in str(e.value) and "resume=" in str(e.value) and "--" not in str(e.value)
    with pytest.raises(UserError) as e:
        gankit.evaluate(plain, "fid", n=50, step="best")
    assert "no best.pt" in str(e.value) and "--" not in str(e.value)
    from gankit.api import in_python_terms
    assert in_python_terms("pass --force to replace it; --class K; --checkpoint 3; --sheet-n") == \
        "pass force=True to replace it; cls K; step 3; sheet_n"


def test_the_progress_bar_is_tqdm_auto_and_show_draws_grids(tmp_path, monkeypatch):
    import numpy as np
    import tqdm.auto
    from PIL import Image

    import gankit
    from gankit.errors import ConfigError

    made = []

    class Bar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs["total"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)   # what a notebook's tqdm.auto gives: its widget
    fields = {k.lstrip("-"): v for k, v in zip(TINY[::2], TINY[1::2]) if k != "--no-progress"}
    run = gankit.train(gankit.load_config(None, **fields), steps=3, out=str(tmp_path), name="p")
    assert made == [3]
    x, _ = gankit.load(run)(6, generator=torch.Generator().manual_seed(0))          # (6, 1, 16, 16)
    grid = gankit.show(x, nrow=3)
    assert isinstance(grid, Image.Image) and grid.size == (3 * 18 + 2, 2 * 18 + 2)
    again = gankit.show(np.asarray(grid)[None].repeat(2, 0))                        # uint8 (N, H, W, C), as npz
    assert again.size == (2 * (grid.width + 2) + 2, grid.height + 4)
    assert gankit.show(str(run), n=4).size == (2 * 18 + 2, 2 * 18 + 2)              # a run: n samples of its G
    assert np.array_equal(np.asarray(gankit.show(run, n=4, seed=1)), np.asarray(gankit.show(run, n=4, seed=1)))
    with pytest.raises(ConfigError, match="images: expected images"):
        gankit.show([1, 2, 3])


# ------------------------------------------------------------------------------------------------------------------
# runs to compare: gankit runs, keep_best and --checkpoint best


def _evaluation(run: Path, step: int, **results) -> None:
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / f"step-{step:07d}.json").write_text(json.dumps({"step": step, "n": 100, "results": results}))


def test_runs_lists_the_runs_of_a_folder_sorted_by_a_metric(run, tmp_path, cli):
    runs = tmp_path / "runs"
    for name, fid, rec in (("a", 40.0, 0.5), ("b", 12.5, 0.75), ("c", 90.0, 0.25)):
        shutil.copytree(run, runs / name)
        shutil.rmtree(runs / name / "eval")
        _evaluation(runs / name, 10, fid=fid, fid_floor=1.5, recognisable=rec)
    shutil.copytree(run, runs / "fresh", ignore=shutil.ignore_patterns("eval"))   # never evaluated
    (runs / "not-a-run").mkdir()
    with open(runs / "b" / "metrics.jsonl", "a") as f:                              # b was resumed once
        f.write(json.dumps({"step": 10, "event": "resume"}) + "\n" + json.dumps({"step": 15, "sec": 2.0}) + "\n")
    code, out, err = cli("runs", runs, "--sort", "fid")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "data", "model", "steps"]
    assert [line.split()[0] for line in lines[1:5]] == ["b", "a", "c", "fresh"]   # lower FID first, none last
    assert "12.5 (1.5)" in lines[1] and "75.0%" in lines[1] and "digits" in lines[1] and "15/10" in lines[1]
    sec = [r["sec"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "sec" in r][-1]
    assert lines[2].split()[-1] == f"0:{round(sec):02d}" and lines[1].split()[-1] == f"0:{round(sec + 2):02d}"
    assert "tensorboard --logdir" in lines[-1] and "4 run(s)" in lines[-1]
    code, out, _ = cli("runs", runs, "--sort", "recognisable")                     # higher first
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["b", "a", "c"]
    code, _, err = cli("runs", runs, "--sort", "beauty")
    assert code == 2 and "cannot sort by 'beauty'" in err and len(err.strip().splitlines()) == 1


def test_keep_best_keeps_the_best_evaluation_and_checkpoint_best_uses_it(tmp_path, cli, monkeypatch):
    from gankit.errors import ConfigError
    from gankit.tasks.gan.trainer import GANTrainer

    fid = {2: 5.0, 4: 3.0, 6: 4.0, 8: 3.5, 10: 2.0}                                  # scripted evaluations
    monkeypatch.setattr(GANTrainer, "evaluate", lambda self, run_dir, k, writer: {"eval/fid": fid[k]})
    flags = [*TINY, "--eval_metrics", "fid", "--eval_every", 2, "--ckpt_every", 2, "--keep_best", "fid"]
    assert cli("train", *flags, "--steps", 6, "--out", tmp_path, "--name", "k")[0] == 0
    ckpts = tmp_path / "k" / "checkpoints"
    best = torch.load(ckpts / "best.pt", weights_only=True)
    assert best["step"] == 4 and best["best"] == {"metric": "fid", "value": 3.0, "step": 4}
    four = torch.load(ckpts / "step-0000004.pt", weights_only=True)
    assert all(torch.equal(best["G"][k], four["G"][k]) for k in four["G"])
    assert cli("train", "--resume", tmp_path / "k", "--steps", 10)[0] == 0         # 3.5 does not beat 3.0; 2.0 does
    assert torch.load(ckpts / "best.pt", weights_only=True)["best"]["step"] == 10
    for name in ("step-0000004.pt", "step-0000008.pt"):
        assert (ckpts / name).is_file()
    code, _, err = cli("sample", tmp_path / "k", "--checkpoint", "best", "--n", 3, "--out", tmp_path / "b.npz")
    assert code == 0, err
    assert cli("sample", tmp_path / "k", "--checkpoint", 10, "--n", 3, "--out", tmp_path / "t.npz")[0] == 0
    assert (tmp_path / "b.npz").read_bytes() == (tmp_path / "t.npz").read_bytes()
    assert cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "plain")[0] == 0
    code, _, err = cli("sample", tmp_path / "plain", "--checkpoint", "best", "--n", 1, "--out", tmp_path / "p.npz")
    assert code == 2 and "no best.pt" in err and "keep_best" in err
    from gankit import config
    for bad, needle in (({"keep_best": "fid"}, "add it to eval_metrics"), ({"keep_best": "beauty"}, "not a result")):
        with pytest.raises(ConfigError, match=needle):
            config.load(None, bad)


# ------------------------------------------------------------------------------------------------------------------
# the report


def test_the_report_after_one_evaluation_or_none(run, tmp_path, cli):
    one = tmp_path / "one"
    shutil.copytree(run, one)                                                 # one evaluation, at step 10
    record = json.loads((one / "eval" / "step-0000010.json").read_text())
    record.update(n=2500, data_size=1797)
    record["results"]["n_samples"] = 898                                       # what digits gives for eval_n 2500
    (one / "eval" / "step-0000010.json").write_text(json.dumps(record))
    assert cli("report", one)[0] == 0
    page = (one / "report.html").read_text()
    alts = re.findall(r'<img alt="([^"]*)"', page)
    assert not [a for a in alts if a.startswith("eval/")]                    # no charts of one point
    assert re.search(r"<tr><td>eval/fid</td><td>10</td><td>[\d.]+</td><td>[\d.]+</td></tr>", page)  # a table
    assert "n_samples" not in page.split("<h2>Training curves</h2>")[1].split("<h2>Config</h2>")[0]
    assert "898 samples (of the 2500 asked for" in page                       # the count really compared
    assert "<h2>Data</h2>" in page and "1,797 training examples" in page and "10 classes" in page
    assert "<tr><td>img_size</td><td>16</td><td>32</td></tr>" in page          # the config as a diff ...
    assert "<tr><td>loss</td>" not in page and "<details><summary>config.yaml" in page   # ... and the file, folded
    code, _, err = cli("report", one)                                          # its own page: replaced, no --force
    assert code == 0, err
    (one / "report.html").write_text("<p>mine</p>")                             # a file it did not write: kept
    code, _, err = cli("report", one)
    assert code == 2 and "exists; pass --force" in err and (one / "report.html").read_text() == "<p>mine</p>"

    none = tmp_path / "none"
    shutil.copytree(run, none, ignore=shutil.ignore_patterns("eval", "report.html"))
    assert cli("report", none)[0] == 0
    page = (none / "report.html").read_text()
    assert "No evaluation yet" in page and f"gankit eval {none}" in page

    two = tmp_path / "two"
    shutil.copytree(run, two)
    with open(two / "metrics.jsonl", "a") as f:                                # an evaluation at step 5 too
        f.write(json.dumps({"step": 5, "eval/fid": 300.0, "eval/fid_floor": 2.0, "eval/n_samples": 100}) + "\n")
    assert cli("report", two)[0] == 0
    alts = re.findall(r'<img alt="([^"]*)"', (two / "report.html").read_text())
    assert alts.count("eval/fid") == 1 and "eval/fid_floor" not in alts       # the metric and its floor: one chart
    assert "eval/n_samples" not in alts


# ------------------------------------------------------------------------------------------------------------------
# folder runs that follow the data


@pytest.fixture
def pictures(tmp_path):
    """A folder of 40x48 images in two class sub-folders, a third of them grayscale, and 5 files that are no image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(24):
        folder = tmp_path / "pics" / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((40, 48, 3)) * 255).astype("uint8")
        Image.fromarray(pixels[..., 0] if i % 3 == 0 else pixels).save(folder / f"{i:02d}.png")
    for i in range(5):
        (tmp_path / "pics" / "cats" / f"broken{i}.png").write_bytes(b"not an image")
    return tmp_path / "pics"


def test_a_folder_run_takes_its_size_and_classes_from_the_images(pictures, tmp_path, cli, caplog):
    caplog.set_level(logging.INFO, "gankit")
    small = ["--z_dim", "8", "--g_width", "8", "--d_width", "8", "--batch_size", "8", "--log_every", "5",
             "--ckpt_every", "0", "--no-progress", "--out", tmp_path / "runs"]
    code, _, err = cli("train", "--data", f"folder:{pictures}", "--steps", 12, *small, "--name", "f")
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "runs" / "f" / "config.yaml").read_text())
    assert (cfg["img_size"], cfg["cond"], cfg["c_dim"], cfg["ema_decay"]) == (32, "projection", 2, 0.999)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "img_size 32, from the images: their median shorter side is 40 px" in said
    assert "8 of 24 images are grayscale, converted to RGB" in said
    assert re.search(r"skipped 5 unreadable image file\(s\) of 29 under \S+: cats/broken0.png, cats/broken1.png, "
                     r"cats/broken2.png and 2 more", said)
    assert "2 classes (cats, dogs): training a class-conditional model" in said
    assert re.search(r"train: about \d+:\d\d:\d\d for the remaining 6 steps", said)     # the ETA, up front
    caplog.clear()
    code, _, err = cli("train", "--data", f"folder:{pictures}", "--steps", 2, "--img_size", 16, "--cond", "none",
                       "--xflip", *small, "--name", "g")
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "runs" / "g" / "config.yaml").read_text())
    assert (cfg["img_size"], cfg["cond"], cfg["c_dim"]) == (16, "none", 0)
    assert "each of the 24 training images is also shown mirrored left-right, 48 in all" in caplog.text
    code, _, err = cli("sample", tmp_path / "runs" / "g", "--class", 1, "--n", 2, "--out", tmp_path / "s.npz")
    assert code == 2 and "trained without classes, though its data has 2 (cats, dogs)" in err
    assert "train with cond projection" in err and len(err.strip().splitlines()) == 1


def test_gankit_data_shows_what_training_would_read_without_training(pictures, tmp_path, cli, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    code, out, err = cli("data", pictures, "--batch_size", 8)
    assert code == 0, err
    assert "24 training examples, 3 x 32 x 32 images, 2 classes (cats, dogs), cond projection" in out
    assert Image.open(tmp_path / "reals.png").size == (5 * 34 + 2, 5 * 34 + 2)        # 24 images, 5 a row
    assert not (tmp_path / "runs").exists()                                          # nothing trained
    code, _, err = cli("data", pictures, "--batch_size", 8)
    assert code == 2 and "reals.png exists; pass --force" in err


# ------------------------------------------------------------------------------------------------------------------
# presets and exports


def test_presets_say_what_they_are_for_and_exports_are_plain_files(tmp_path, cli):
    import stat

    from gankit import config

    code, out, _ = cli("presets")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == config.presets()
    for name in ("digits", "mnist", "mnist-sr", "ring"):
        line = next(line for line in lines if line.split()[0] == name)
        assert len(line.split(None, 1)[1]) > 30 and line.split(None, 1)[1] == config.preset_description(name)
    assert "description" not in config.load("digits").to_dict()                    # no field of the config
    assert cli("train", *TINY, "--steps", 2, "--out", tmp_path, "--name", "u")[0] == 0
    assert cli("export", tmp_path / "u", "--out", tmp_path / "exp")[0] == 0
    modes = {f: stat.S_IMODE((tmp_path / "exp" / f).stat().st_mode) for f in ("generator.safetensors",
                                                                            "generator.json")}
    assert modes["generator.safetensors"] == modes["generator.json"] == 0o644, modes
    meta = json.loads((tmp_path / "exp" / "generator.json").read_text())
    assert meta["c_dim"] == 0 and meta["class_names"] == [] and "y" not in meta["inputs"]


# ------------------------------------------------------------------------------------------------------------------
# scoring offline: the random feature space, the blob floor of a classifier, classes by name, `gankit runs` light


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A folder of 16x16 RGB images in two class sub-folders that their colour alone tells apart (reddish noise,
    bluish noise), and a 2-step conditional run on it."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for i in range(32):
        folder = root / "pics" / ("blue" if i % 2 else "red")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.random((16, 16, 3)) * 0.4
        pixels[..., 2 if i % 2 else 0] += 0.6
        Image.fromarray((pixels * 255).astype("uint8")).save(folder / f"{i:02d}.png")
    flags = ["--z_dim", "8", "--g_width", "8", "--d_width", "8", "--batch_size", "8", "--ckpt_every", "0",
             "--no-progress", "--img_size", "16"]
    assert main(["train", "--data", f"folder:{root / 'pics'}", "--steps", "2", *flags, "--out", str(root / "runs"),
                 "--name", "c"]) == 0
    return root / "runs" / "c"


def test_random_features_are_shipped_fixed_and_rank_degradations(tmp_path, monkeypatch):
    from gankit import data
    from gankit.errors import UserError
    from gankit.metrics import classes, random_cnn
    from gankit.metrics.fid import fid_from_features

    net = random_cnn.load()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in random_cnn.make_weights().items())  # the seed's
    for shape in ((3, 1, 8, 8), (3, 3, 16, 16), (3, 4, 20, 12), (3, 3, 96, 128)):     # any channels, any size
        f = random_cnn.embed(net, torch.rand(shape) * 2 - 1)
        assert f.shape == (3, random_cnn.FEAT_DIM) and torch.isfinite(f).all()
    x = data.load("digits", img_size=16).floats()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    a, b = x[perm[:300]], x[perm[300:600]]
    noise, fa = torch.randn(b.shape, generator=torch.Generator().manual_seed(1)), random_cnn.embed(net, a)

    def fid(sx):
        return fid_from_features(random_cnn.embed(net, sx), fa)
    floor = fid(b)
    blurred = [fid(classes.blur(b, s)) for s in (0.5, 1.0)]
    noisy = [fid((b + s * noise).clamp(-1, 1)) for s in (0.1, 0.3)]
    assert floor < blurred[0] < blurred[1] and floor < noisy[0] < noisy[1]
    assert blurred[1] > 10 * floor and noisy[1] > 10 * floor
    for name in ("random-cnn-v1.safetensors", "random-cnn-v1.json"):                   # a damaged file is refused
        shutil.copy(random_cnn.WEIGHTS_DIR / name, tmp_path / name)
    with open(tmp_path / "random-cnn-v1.safetensors", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\0\0\0\1")
    monkeypatch.setattr(random_cnn, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(UserError, match="does not match its checksum"):
        random_cnn.load()


def test_a_folder_without_inception_weights_is_scored_in_the_random_space(tmp_path, cli, monkeypatch, caplog):
    import numpy as np
    from PIL import Image

    from gankit import data
    from gankit.metrics import features

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))                         # no Inception weights here
    rng = np.random.default_rng(0)
    (tmp_path / "flat").mkdir()
    for i in range(24):                                                                # no class sub-folders
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8")).save(tmp_path / "flat" / f"{i}.png")
    flags = ["--z_dim", "8", "--g_width", "8", "--d_width", "8", "--batch_size", "8", "--ckpt_every", "0",
             "--no-progress", "--img_size", "16", "--out", tmp_path / "runs"]
    assert cli("train", "--data", f"folder:{tmp_path / 'flat'}", "--steps", 2, *flags, "--name", "f")[0] == 0
    caplog.set_level(logging.WARNING, "gankit")
    code, out, err = cli("eval", tmp_path / "runs" / "f", "--metrics", "fid,pr", "--n", 12)
    assert code == 0, err
    record = json.loads((tmp_path / "runs" / "f" / "eval" / "step-0000002.json").read_text())
    assert record["features"] == "random" and record["results"]["fid"] > record["results"]["fid_floor"] >= 0
    said = [r.getMessage() for r in caplog.records if "features: random" in r.getMessage()]
    assert len(said) == 1 and "no shipped classifier" in said[0] and features.INCEPTION_FILE in said[0]
    assert "features: random (random-cnn-v1): features of a fixed random CNN" in out
    # where the weights are on disk, auto takes Inception; digits and MNIST keep their shipped classifier
    (features.inception_dir()).mkdir(parents=True)
    (features.inception_dir() / features.INCEPTION_FILE).write_bytes(b"")
    flat = data.load(f"folder:{tmp_path / 'flat'}", img_size=16)
    assert features.resolve("auto", flat) == "inception"
    assert features.resolve("auto", data.load("digits", img_size=16)) == "classifier"


def test_a_classifier_that_tells_classes_by_colour_is_cautioned(colours, run, cli, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "gankit")
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("eval", colours, "--metrics", "recognisable", "--n", 16)
    assert code == 0, err
    record = json.loads(sorted((colours / "eval").glob("step-*.json"))[-1].read_text())
    assert record["classifier"]["held_out_accuracy"] == 1.0                    # trivially accurate ...
    assert record["classifier"]["blob_class_acc"] >= 0.5 and record["results"]["recognisable_blob"] >= 0.5
    assert record["caution"].startswith("caution: the data set's classifier puts") and record["caution"] in out
    assert "eval: caution: the data set's classifier" in caplog.text          # ... and said on the console
    assert cli("report", colours, "--force")[0] == 0
    assert record["caution"].replace("'", "&#x27;") in (colours / "report.html").read_text()
    code, out, err = cli("eval", run, "--metrics", "recognisable", "--n", 100)   # digits: blobs are all one class
    assert code == 0, err
    record = json.loads(sorted((run / "eval").glob("step-*.json"))[-1].read_text())
    assert "caution" not in record and record["classifier"]["blob_class_acc"] < 0.2
    assert "caution" not in out and "recognisable_blob" in out


def test_the_command_line_takes_a_class_by_name(colours, cli, tmp_path):
    import numpy as np

    for cls, want in (("red", 1), ("blue", 0), ("1", 1)):                 # sub-folders in name order: blue, red
        code, _, err = cli("sample", colours, "--class", cls, "--n", 3, "--out", tmp_path / f"{cls}.npz")
        assert code == 0, err
        assert np.load(tmp_path / f"{cls}.npz")["labels"].tolist() == [want] * 3
    code, _, err = cli("sample", colours, "--class", "green", "--n", 3, "--out", tmp_path / "g.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--class: 'green' is not a class of this G; give an index in 0..1 or a name: 0 'blue', 1 'red'" in err
    code, _, err = cli("interpolate", colours, "--class", "red", "--paths", 2, "--steps", 2, "--out", tmp_path / "i")
    assert code == 0, err
    assert np.load(tmp_path / "i" / "interpolation.npz")["labels"].tolist() == [1, 1]
    code, _, err = cli("arithmetic", colours, "--a", "class:red", "--b", "class:blue", "--c", "class:red",
                       "--sheet-n", 8, "--class-n", 2, "--out", tmp_path / "a.png")
    assert code == 0, err
    code, _, err = cli("arithmetic", colours, "--a", "class:green", "--b", "0,1,2", "--c", "3,4,5",
                       "--sheet-n", 8, "--out", tmp_path / "b.png")
    assert code == 2 and "--a: class:green: 'green' is not a class of this G" in err
    assert not (tmp_path / "b.png").exists()



def test_python_explores_as_the_command_line_does(colours, tmp_path):
    import numpy as np

    from gankit import api
    from gankit.errors import ConfigError

    files = api.interpolate(colours, tmp_path / "i", paths=2, steps=3, cls="red")
    assert [Path(f).name for f in files] == ["interpolation.png", "interpolation.gif", "interpolation.npz"]
    assert np.load(tmp_path / "i" / "interpolation.npz")["labels"].tolist() == [1, 1]
    png, npz = api.arithmetic(colours, tmp_path / "a.png", "class:red", "class:blue", "class:red", class_n=2)
    assert Path(png).is_file() and Path(npz).name == "a.npz"
    with pytest.raises(ConfigError) as e:
        api.arithmetic(colours, tmp_path / "b.png", "0,1,2", "class:green", "3,4,5")
    assert str(e.value).startswith("b: class:green: 'green' is not a class of this G") and "--" not in str(e.value)
    assert not (tmp_path / "b.png").exists()

def test_runs_imports_no_torch(run):
    import subprocess
    import sys

    code = ("import sys\nfrom gankit.cli import main\nmain(['runs', sys.argv[1]])\n"
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(run.parent)], capture_output=True, text=True, check=True)
    assert "dcgan-digits" in out.stdout and out.stdout.splitlines()[-1] == "[]", out.stdout + out.stderr
