"""gankit.run: a run folder's name, how a run is found, which folders gankit may take over or replace, the lock, the
resume policy, the metric records and the plain progress line. No training: the folders are made by hand."""

import json
from pathlib import Path

import pytest
import torch

from gankit import config, distributed, run
from gankit.errors import ConfigError, UserError


def _cfg(tmp_path, **fields):
    return config.load(None, {"out": str(tmp_path), "z_dim": 8, "g_width": 8, "d_width": 8, **fields})


def _run_with_checkpoint(path):
    """What a run leaves after its first checkpoint (the file's contents do not matter to the folder policy)."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.yaml").write_text("steps: 1\n")
    (path / "checkpoints" / "step-0000005.pt").write_bytes(b"weights")
    return path


def _failed_start(path):
    """What kill -9 before the first checkpoint leaves: gankit's files, no checkpoint."""
    (path / "samples").mkdir(parents=True)
    (path / "checkpoints").mkdir()
    (path / "config.yaml").write_text("steps: 1\n")
    (path / "metrics.jsonl").write_text('{"step": 5}\n')
    (path / "samples" / "step-0000005.png").write_bytes(b"png")
    (path / "checkpoints" / ".step-0000010.pt.tmp").write_bytes(b"half")
    return path


@pytest.mark.parametrize("fields,name", [
    ({}, "dcgan-digits"),
    ({"model": "mlp", "img_size": 8}, "mlp-digits"),
    ({"cond": "concat"}, "dcgan-cond-digits"),
    ({"task": "ssl", "model": "mlp", "img_size": 8, "holdout": 100}, "ssl-digits"),   # the task, not the model
    ({"data": "folder:/photos/My Pics! (2024)"}, "dcgan-My_Pics_2024"),                # the folder's name, sanitised
    ({"data": "folder:/photos/..."}, "dcgan-folder"),                                  # nothing left of it
])
def test_default_name(tmp_path, fields, name):
    assert run.default_name(_cfg(tmp_path, **fields)) == name


def test_numbered_takes_the_first_free_name(tmp_path):
    assert run.numbered(tmp_path, "a") == tmp_path / "a"
    (tmp_path / "a").mkdir()
    (tmp_path / "a-2").write_text("a file takes the name too")
    assert run.numbered(tmp_path, "a") == tmp_path / "a-3"


def test_find_run_takes_a_path_or_a_name_under_the_runs_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    (root / "r1").mkdir(parents=True)
    assert run.find_run(root / "r1") == root / "r1"                                # a path that exists
    assert run.find_run("r1", root) == root / "r1"                                 # a name under the root
    assert run.find_run(tmp_path / "no" / "such.pt", root) == tmp_path / "no" / "such.pt"   # the command's error
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    assert run.find_run("here", root) == Path("here")                             # a path wins over a name
    with pytest.raises(UserError) as e:
        run.find_run("r2", root)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "no run named 'r2'" in msg and str(root) in msg


def test_has_checkpoint(tmp_path):
    assert not run.has_checkpoint(tmp_path)                                         # no checkpoints/
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".step-0000010.pt.tmp").write_bytes(b"half")
    assert not run.has_checkpoint(tmp_path)                                         # a half-written one
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"x")
    assert run.has_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "latest.pt").unlink()
    (tmp_path / "checkpoints" / "step-0000010.pt").write_bytes(b"x")
    assert run.has_checkpoint(tmp_path)


def test_a_folder_of_gankits_files_without_a_checkpoint_is_a_failed_start(tmp_path):
    start = _failed_start(tmp_path / "r")
    assert run.foreign_entries(start, run.START_FILES) == []
    assert run.is_failed_start(start)
    (start / "samples" / "mine.png").write_bytes(b"a user's picture")             # not a step-N.png
    assert run.foreign_entries(start, run.START_FILES) == ["samples/mine.png"]
    assert not run.is_failed_start(start)
    (start / "samples" / "mine.png").unlink()
    (start / "notes.txt").write_text("keep me")
    assert run.foreign_entries(start, run.START_FILES) == ["notes.txt"]
    assert not run.is_failed_start(start)
    (start / "notes.txt").unlink()
    (start / "checkpoints" / "step-0000005.pt").write_bytes(b"x")
    assert not run.is_failed_start(start)                                           # a run, not a failed start
    assert not run.is_failed_start(tmp_path / "missing")


def test_create_refuses_an_explicit_name_that_holds_a_run(tmp_path):
    held = _run_with_checkpoint(tmp_path / "r")
    with pytest.raises(UserError, match="--force"):
        run.RunFolder.create(_cfg(tmp_path, name="r"))
    assert (held / "checkpoints" / "step-0000005.pt").read_bytes() == b"weights"   # untouched


def test_create_numbers_a_default_name_and_lays_the_folder_out(tmp_path):
    _run_with_checkpoint(tmp_path / "dcgan-digits")
    (tmp_path / "dcgan-digits-2").write_text("a file, not a folder")
    folder = run.RunFolder.create(_cfg(tmp_path))
    try:
        assert folder.path == tmp_path / "dcgan-digits-3" and folder.fresh
        assert sorted(p.name for p in folder.path.iterdir()) == ["checkpoints", "samples"]
    finally:
        folder.close()


@pytest.mark.parametrize("name", ["r", ""])
def test_create_takes_over_a_failed_start(tmp_path, name):
    start = _failed_start(tmp_path / (name or "dcgan-digits"))
    folder = run.RunFolder.create(_cfg(tmp_path, name=name))
    try:
        assert folder.path == start                                                  # not numbered away from it
        assert sorted(p.name for p in start.rglob("*")) == ["checkpoints", "samples"]   # its leftovers cleared
    finally:
        folder.close()


def test_force_replaces_only_gankits_own_folders(tmp_path):
    _run_with_checkpoint(tmp_path / "r")
    (tmp_path / "r" / "report.html").write_text("gankit's report")
    folder = run.RunFolder.create(_cfg(tmp_path, name="r"), force=True)
    folder.close()
    assert sorted(p.name for p in (tmp_path / "r").rglob("*")) == ["checkpoints", "samples"]

    mine = _run_with_checkpoint(tmp_path / "mine")
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"files gankit did not write \(notes.txt\)"):
        run.RunFolder.create(_cfg(tmp_path, name="mine"), force=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "checkpoints" / "step-0000005.pt").read_bytes() == b"weights"
    run.RunFolder.existing(mine).close()                                             # the refusal let its lock go


def test_a_held_folder_is_refused_until_it_is_closed(tmp_path):
    first = run.RunFolder.create(_cfg(tmp_path, name="r"))
    try:
        with pytest.raises(UserError, match="in use by another gankit process"):
            run.RunFolder.existing(first.path)
        with pytest.raises(UserError, match="in use"):                              # not even with --force
            run.RunFolder.create(_cfg(tmp_path, name="r"), force=True)
        other = run.RunFolder.create(_cfg(tmp_path))                                 # a default name moves on
        assert other.path.name == "dcgan-digits"
        other.close()
    finally:
        first.close()
    second = run.RunFolder.existing(first.path)
    second.close()


def _saved_run(tmp_path, **fields):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "config.yaml").write_text(config.dump(_cfg(tmp_path, **fields)))
    return folder


def test_resume_config_lets_only_the_resumable_fields_change(tmp_path):
    folder = _saved_run(tmp_path, steps=20, g_width=8)
    cfg = run.resume_config(folder, {"steps": 50, "g_width": 8, "g_lr": "1e-3"})    # g_width as saved: allowed
    assert (cfg.steps, cfg.g_width, cfg.g_lr) == (50, 8, 1e-3)
    with pytest.raises(ConfigError) as e:
        run.resume_config(folder, {"steps": 50, "g_width": 16})
    assert e.value.field == "g_width" and "cannot change on resume" in str(e.value) and "saved: 8" in str(e.value)
    with pytest.raises(ConfigError) as e:
        run.resume_config(folder, {"seed": 1})
    assert e.value.field == "seed"
    with pytest.raises(UserError, match="no config.yaml"):
        run.resume_config(tmp_path / "missing", {})


def test_recorder_writes_metrics_jsonl_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rec = run.Recorder(tmp_path, distributed.Context(), 0)
    rows = [{"step": 5, "nimg": 80, "loss_d": 1.25, "event": "log", "nonfinite": False},
            {"step": 10, "nimg": 160, "loss_d": 0.5, "event": "log", "nonfinite": False}]
    for row in rows:
        rec.write(row)
    rec.close()
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == rows
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    ea.Reload()
    assert [(s.step, s.value) for s in ea.Scalars("loss_d")] == [(5, 1.25), (10, 0.5)]
    assert ea.Tags()["scalars"] == ["loss_d"]                       # not the counters, strings or flags

    other = tmp_path / "rank1"
    other.mkdir()
    rec = run.Recorder(other, distributed.Context(rank=1, world_size=2), 0)   # only the main process writes
    rec.write(rows[0])
    rec.close()
    assert list(other.iterdir()) == []


def test_line_progress_prints_step_rate_and_eta(capsys, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(run.time, "time", lambda: now[0])
    bar = run.LineProgress(total=100, start=20)
    bar.update(10)
    now[0] += 20.0                                                  # 10 steps in 20 s: 0.5 steps/s, 70 to go
    bar.set_postfix_str("loss_d 0.5")
    assert capsys.readouterr().err == ("train: step 30/100 (30%), 0.50 steps/s, elapsed 0:20, ETA 2:20 | "
                                       "loss_d 0.5\n")
    bar.n = 25                                                      # set back after a rollback
    now[0] += 9980.0
    bar.set_postfix_str("x")
    assert capsys.readouterr().err == "train: step 25/100 (25%), 0.00 steps/s, elapsed 2:46:40, ETA 41:40:00 | x\n"


def test_save_reals_refuses_an_existing_reals_png(tmp_path):
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    path = run.save_reals(x, tmp_path)
    assert path == tmp_path / "reals.png" and path.read_bytes()[:4] == b"\x89PNG"
    path.write_bytes(b"the old picture")
    with pytest.raises(UserError, match="reals.png exists"):
        run.save_reals(x, tmp_path)
    assert path.read_bytes() == b"the old picture"


def test_resume_config_names_a_field_an_older_config_lacks(tmp_path):
    # a config.yaml from before a field existed: changing that field on resume is refused by name, not a KeyError
    (tmp_path / "config.yaml").write_text("steps: 10\ng_width: 8\n")
    with pytest.raises(ConfigError, match="mbstd.*saved: False"):
        run.resume_config(tmp_path, {"mbstd": True})


def test_the_background_writer_works_on_one_thread_and_leaves_training_its_own():
    """A second OpenMP team in the writer thread would share the cores with training's for the rest of a run (every
    step after the first checkpoint took twice as long on 2 cores): the writer's torch work runs on one thread, and
    the training thread keeps the count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        writer = run.BackgroundWriter()
        seen = []
        writer.submit(lambda: seen.append(torch.get_num_threads()))
        writer.close()
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
