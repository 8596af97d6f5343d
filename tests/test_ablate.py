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
