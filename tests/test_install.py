"""The install keeps README's promises: every declared dependency is imported by gankit, every third-party import
is declared (ONNX's only in the `onnx` extra), the Python README names is requires-python's, and --version works.
.ci/resolve.py checks against the package index that the set resolves for that Python."""

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

# distribution name -> the module it provides, where they differ
MODULE = {"pillow": "PIL", "scikit-learn": "sklearn", "pyyaml": "yaml", "torch-fidelity": "torch_fidelity"}


def _project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(reqs):
    return {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in reqs}


def _imports(folder: Path = REPO / "src" / "gankit", skip: Path | None = None) -> set[str]:
    """Top-level modules imported anywhere in `folder` (src/gankit) but `skip`, at module level or inside functions."""
    found = set()
    for path in (p for p in folder.rglob("*.py") if skip is None or not p.is_relative_to(skip)):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
                if node.module.startswith("torch.utils.tensorboard"):  # torch's writer needs the tensorboard package
                    found.add("tensorboard")
    return found - set(sys.stdlib_module_names) - {"gankit", "__future__"}


def test_every_dependency_is_imported_and_every_import_declared():
    project = _project()
    core = {MODULE.get(n, n.replace("-", "_")) for n in _names(project["dependencies"])}
    onnx = {MODULE.get(n, n) for n in _names(project["optional-dependencies"]["onnx"])}
    serve = {MODULE.get(n, n) for n in _names(project["optional-dependencies"]["serve"])}
    used = _imports()
    assert core - used == set(), "declared but never imported"
    # onnxscript is loaded by torch.onnx.export(dynamo=True), not imported by gankit itself
    assert used - core - onnx - serve == set(), "imported but not declared"
    # the serve extra (gankit serve) is imported by gankit.serve alone, which cli.py imports inside cmd_serve
    server = REPO / "src" / "gankit" / "serve"
    assert serve <= _imports(server) and not serve & _imports(skip=server), "the serve extra outside gankit.serve"
    assert {"onnxruntime"} <= used and "onnx" not in core


def test_readme_names_the_lowest_python_that_requires_python_allows():
    lowest = re.fullmatch(r">=\s*(3\.\d+)", _project()["requires-python"]).group(1)
    readme = (REPO / "README.md").read_text()
    assert f"Python >= {lowest}" in readme
    assert not re.search(r"Python >= 3\.(?!%s)\d+" % lowest.split(".")[1], readme)


def test_version_flag(cli):
    from gankit import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.startswith(f"gankit {__version__} (torch ")


def test_export_onnx_without_the_extra_says_how_to_install_it(tiny_run, tmp_path, cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    code, _, err = cli("export", tiny_run, "--out", tmp_path / "exp", "--onnx")
    assert code == 2 and "pip install 'gankit[onnx]'" in err and "onnxscript" in err
    assert not (tmp_path / "exp").exists()                    # refused before anything was written
