"""The house's shape: gankit's modules import one way (no circles), at the top of the file (few function-level
imports, and those only where a module would otherwise load torch for `--help` or a registry before it exists),
code that uses a trained model never loads the training code, and every function can be read in one screen."""

import ast
import subprocess
import sys
from pathlib import Path

import gankit

SRC = Path(gankit.__file__).resolve().parent
# may defer torch so that `gankit --help` stays fast
ENTRY_POINTS = {"gankit.cli", "gankit.cli.train", "gankit.cli.use", "gankit.cli.tasks", "gankit.cli.tools",
                "gankit.api", "gankit"}
MAX_DEFERRED = 12
MAX_FUNCTION_LINES = 45
MAX_FILE_LINES = 500
# the training code: the loop, the step, the guard, the task table and each task's trainer (a task's use, in the same
# wing, never loads them)
TRAINING = ["gankit.session", "gankit.step", "gankit.guard", "gankit.tasks.table", "gankit.tasks.common",
            *(f"gankit.tasks.{t}.trainer" for t in ("gan", "ssl", "sr", "predict"))]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports():
    """{module: set of gankit modules it imports at its top level}, and [(module, line, target)] of the imports made
    inside functions."""
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    top, deferred = {m: set() for m in modules}, []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gankit":
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in (t for t in targets if t in modules and t != mod):
                (deferred.append((mod, node.lineno, t)) if id(node) in inside else top[mod].add(t))
    return top, deferred


def test_no_import_circles():
    top, _ = _imports()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(top[m]):
            if t.startswith(m + "."):       # a package importing its own submodules is not a circle
                continue
            if state.get(t) == "open" and not m.startswith(t + "."):
                cycles.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(top):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_few_function_level_imports_outside_the_entry_points():
    _, deferred = _imports()
    outside = [d for d in deferred if d[0] not in ENTRY_POINTS]
    assert len(outside) <= MAX_DEFERRED, outside


def test_using_a_trained_model_never_loads_the_training_code():
    users = ["gankit.sample", "gankit.export", "gankit.explore", "gankit.report", "gankit.tasks.gan.inpaint",
             "gankit.tasks.sr.upscale", "gankit.tasks.ssl.classify", "gankit.tasks.predict.futures",
             "gankit.metrics.evaluation"]
    assert set(TRAINING) <= set(_imports()[0]), "a module of the training code was renamed: name it here"
    code = (f"import sys\nimport {', '.join(users)}\n"
            f"print(sorted(m for m in {TRAINING!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_config_loads_without_torch():
    code = "import sys, gankit.config, gankit.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_command_lines_help_loads_without_torch():
    # every subcommand's parser is built for `gankit --help`: none of them may need torch for its flags
    code = "import sys\nfrom gankit.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_file_is_longer_than_a_sitting():
    long = [f"{p.relative_to(SRC)} ({n} lines)" for p in sorted(SRC.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, long
