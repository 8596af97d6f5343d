"""A task is known by its registry row: outside registry.py and the task table (tasks/table.py), no module compares
a value with a task's name (`task == "gan"`, `cfg.task in ("ssl", "sr")`); it asks the row's properties instead
(`registry.TASKS[cfg.task].guided`), so that a new task is a row and a wing, not an edit of every module that asks."""

import ast
from pathlib import Path

import gankit
from gankit import registry

SRC = Path(gankit.__file__).resolve().parent
ALLOWED = {SRC / "registry.py", SRC / "tasks" / "table.py"}


def _names(node: ast.AST) -> set[str]:
    """The task names among a compared operand's string constants (itself, or the items of a tuple, list or set)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and i.value in registry.TASKS}


def task_name_comparisons(text: str) -> list[str]:
    """'line: source' for each comparison in a module's text of a task's name with something named task (a task
    name is also a word for other things: gankit.predict is a function)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if any(_names(n) and any("task" in ast.get_source_segment(text, o) for o in sides if o is not n)
               for n in sides):
            found.append(f"{node.lineno}: {ast.get_source_segment(text, node)}")
    return found


def test_no_task_name_is_compared_outside_the_registry_and_the_task_table():
    found = [f"{p.relative_to(SRC)}:{hit}" for p in sorted(SRC.rglob("*.py")) if p not in ALLOWED
             for hit in task_name_comparisons(p.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_the_check_finds_each_way_of_writing_a_comparison():
    lines = ['if cfg.task == "gan": pass', 'if "ssl" != saved.task: pass', 'if task not in ("sr", "other"): pass',
             'x = cfg.get("task", "gan")',                # a default, not a comparison
             'if name in ("train", "predict"): pass']     # the function gankit.predict, not the task
    assert [hit.split(":")[0] for hit in task_name_comparisons("\n".join(lines))] == ["1", "2", "3"]
