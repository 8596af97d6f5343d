"""One front door: every command parses its flags and calls the function a Python user calls. A command's function
(cli/*.py cmd_*) is a few lines that call the library and print what it returns; the work itself (files, retries,
resources, loops over data) lives in the library, where gankit's Python API reaches it too."""

import ast
from pathlib import Path

import gankit

CLI = Path(gankit.__file__).resolve().parent / "cli"
MAX_COMMAND_LINES = 18
WORK = (ast.Try, ast.While, ast.With)   # a command that needs one of these is doing the library's work


def commands_doing_work(text: str) -> list[str]:
    found = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
            lines = node.end_lineno - node.lineno + 1
            work = sorted({type(n).__name__ for n in ast.walk(node) if isinstance(n, WORK)})
            if lines > MAX_COMMAND_LINES or work:
                found.append(f"{node.name} ({lines} lines{', ' if work else ''}{', '.join(work)})")
    return found


def test_every_command_calls_the_library_and_prints():
    found = [f"{p.name}: {hit}" for p in sorted(CLI.glob("*.py")) for hit in commands_doing_work(p.read_text())]
    assert not found, found
    assert sum(1 for p in CLI.glob("*.py") for n in ast.parse(p.read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")) == 18   # every command was read


def test_the_check_finds_a_command_doing_work():
    text = ("def cmd_a(args):\n    try:\n        pass\n    except OSError:\n        pass\n"
            "def cmd_b(args):\n" + "    x = 1\n" * MAX_COMMAND_LINES
            + "def helper(args):\n    while True:\n        pass\n")                # a helper is not a command
    assert commands_doing_work(text) == ["cmd_a (5 lines, Try)", f"cmd_b ({MAX_COMMAND_LINES + 1} lines)"]
