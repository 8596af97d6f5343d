"""README's "From Python" block runs as written (in a fresh folder), and the API's functions do what it says."""

import re

import pytest
import torch

from conftest import REPO, TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _readme_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_readme_block(), "README.md (From Python)", "exec"), scope)
    run, x, record = scope["run"], scope["x"], scope["record"]
    assert run == tmp_path.joinpath("runs", "mlp-digits").relative_to(tmp_path)
    assert x.shape == (16, 1, 8, 8) and -1 <= x.min() and x.max() <= 1
    assert record["results"].keys() >= {"fid", "fid_floor", "precision", "precision_floor"}
    assert (run / "eval" / "step-0000100.json").is_file()
    out = capsys.readouterr()
    assert "8 128" in out.out and "| fid |" in out.out
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["step"] == 150 and "event" in (run / "metrics.jsonl").read_text()   # resumed to 150


def test_train_takes_a_config_object_and_checks_it(tmp_path):
    import dataclasses

    import gankit
    from gankit.errors import ConfigError, UserError

    cfg = gankit.load_config(None, **{k.lstrip("-"): v for k, v in zip(TINY[::2], TINY[1::2]) if k != "--no-progress"})
    with pytest.raises(ConfigError, match="batch_size"):
        gankit.train(dataclasses.replace(cfg, batch_size=0), out=str(tmp_path))
    run = gankit.train(cfg, steps=3, out=str(tmp_path), name="api", progress=False)
    assert run == tmp_path / "api" and gankit.load(run).z_dim == 8
    assert gankit.load("api", runs=tmp_path).G.training is False
    with pytest.raises(UserError, match="resume"):
        gankit.train(cfg, resume="api")
