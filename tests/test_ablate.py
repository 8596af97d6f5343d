import csv
import math

import pytest

from gankit import ablate
from gankit.errors import UserError


def test_cells_are_the_product_of_axes_and_aliases_expand():
    cells = ablate.build_cells({"data": "ring", "model": "mlp"}, ["norm=batch,none", "pack=1,2"],
                               ["base:", "fm:feature_matching=true;lr=1e-3"])
    assert len(cells) == 8
    first = cells[0]
    assert first.name == "norm=batch pack=1 base" and first.values == {"g_norm": "batch", "d_norm": "batch",
                                                                          "pack": "1"}
    assert cells[1].values["g_lr"] == cells[1].values["d_lr"] == "1e-3"


def test_bad_axes_are_user_errors():
    with pytest.raises(UserError, match="unknown field"):
        ablate.build_cells({}, ["colour=red"], [])
    with pytest.raises(UserError, match="LABEL:FIELD=V"):
        ablate.build_cells({}, [], ["nocolon"])
    with pytest.raises(Exception, match="pack"):  # every cell is validated before anything runs
        ablate.build_cells({"batch_size": 64}, ["pack=3"], [])


def test_summary_mean_and_standard_error():
    cells = [ablate.Cell("a", {}), ablate.Cell("b", {})]
    rows = [{"cell": "a", "seed": 0, "ok": True, "fid": 1.0}, {"cell": "a", "seed": 1, "ok": True, "fid": 3.0},
            {"cell": "b", "seed": 0, "ok": False, "error": "boom"}, {"cell": "b", "seed": 1, "ok": True, "fid": 5.0}]
    metrics, summary = ablate.summarise(cells, rows)
    assert metrics == ["fid"]
    assert summary[0]["fid"] == 2.0 and summary[0]["fid_se"] == pytest.approx(math.sqrt(2) / math.sqrt(2))
    assert summary[1]["failed"] == 1 and summary[1]["fid"] == 5.0


def test_ablate_cli_runs_the_grid(tmp_path, cli):
    code, out, err = cli("ablate", "--data", "ring", "--model", "mlp", "--z_dim", 2, "--g_width", 8, "--d_width", 8,
                         "--n_points", 256, "--batch_size", 32, "--steps", 2, "--eval_metrics", "modes",
                         "--eval_n", 100, "--vary", "pack=1,2", "--seeds", 1, "--jobs", 2, "--out", tmp_path,
                         "--name", "abl")
    assert code == 0, err
    folder = tmp_path / "abl"
    summary = list(csv.DictReader(open(folder / "summary.csv")))
    assert [r["cell"] for r in summary] == ["pack=1", "pack=2"] and all(r["runs"] == "1" for r in summary)
    assert "modes" in summary[0] and "| pack=2 |" in (folder / "table.md").read_text()
    assert len(list((folder / "runs").iterdir())) == 2
    code, _, err = cli("ablate", "--data", "ring", "--model", "mlp", "--out", tmp_path, "--name", "abl")
    assert code == 2 and "exists" in err


def test_grids_that_repeat_a_setting_or_a_seed_are_refused():
    for vary, variants, match in [(["seed=5,5"], [], "seed is not a field"), (["pack=1,1"], [], "1 given twice"),
                                  (["pack="], [], "names no value"), (["g_lr=1e-3,0.001"], [], "same config"),
                                  (["lr=1e-3,2e-3", "g_lr=1e-4,2e-4"], [], "set by two axes"),
                                  ([], ["a:pack=1", "a:pack=2"], "given twice"), ([], ["s:seed=3"], "--seeds")]:
        with pytest.raises(UserError, match=match):
            ablate.build_cells({}, vary, variants)
    with pytest.raises(UserError, match="seed 3 in the base"):
        ablate.build_cells({"seed": 3}, ["pack=1,2"], [])


def test_each_run_gets_the_ablations_seed_last(tmp_path, monkeypatch):
    seen = []

    def fake_run(args, **kwargs):
        seen.append(args)
        return type("Done", (), {"returncode": 1, "stderr": "no"})()

    monkeypatch.setattr(ablate.subprocess, "run", fake_run)
    cells = ablate.build_cells({"data": "ring", "model": "mlp"}, ["pack=1,2"], [])
    _, rows = ablate.run_ablation({"data": "ring", "seed": 7}, cells, [0, 1], tmp_path / "a", jobs=1)
    assert all(a.count("--seed") == 1 and a[-2] == "--seed" for a in seen)   # the base's seed 7 is not passed
    assert sorted(int(a[-1]) for a in seen) == [0, 0, 1, 1]
    assert sorted((r["cell"], r["seed"]) for r in rows) == [("pack=1", 0), ("pack=1", 1), ("pack=2", 0), ("pack=2", 1)]


def test_a_damaged_line_of_a_run_is_named_and_skipped(tmp_path, caplog):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 2, "eval/fid": 3.0, "sec": 1.5}\n{"step": 4, "eval/f\n'
                                             b'\xff\n{"step": 4, "eval/fid": 2.0}\n')
    assert ablate._final_eval(tmp_path) == {"fid": 2.0, "train_sec": 1.5}
    assert "skipped 2 damaged line(s)" in caplog.text and "metrics.jsonl (line 2, 3)" in caplog.text


def test_an_ablation_without_a_name_gets_a_new_numbered_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(ablate.subprocess, "run", lambda args, **kw: type("Done", (), {"returncode": 1,
                                                                                         "stderr": "no"})())
    fields = {"data": "ring", "model": "mlp", "out": str(tmp_path)}
    first = ablate.ablate(None, fields, ["pack=1,2"], [], seeds=1, jobs=1)
    second = ablate.ablate(None, fields, ["pack=1,2"], [], seeds=1, jobs=1)
    named = ablate.ablate(None, {**fields, "name": "mine"}, ["pack=1,2"], [], seeds=1, jobs=1)
    assert [d["folder"] for d in (first, second, named)] == [tmp_path / "ablate-ring", tmp_path / "ablate-ring-2",
                                                              tmp_path / "mine"]
    assert not first["ok"] and first["files"][0] == tmp_path / "ablate-ring" / "table.md"
    assert "pack=2 (1 of 1 failed)" in first["table"]
