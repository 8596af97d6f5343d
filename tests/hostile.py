"""The hostile-input harness, shared by the corpus files (tests/test_hostile*.py).

Every case runs the real CLI (in-process) in its own folder and must end in one of two ways:
- refused: exit code 2, exactly one line on stderr ("gankit: error: ..."), and every file that was there before is
  byte for byte the same, with no new file left behind (an invalid input changes nothing);
- done: exit code 0 with a result that is checked (the case's `check`): never a silently wrong one.
A Python exception escaping `main()` is a traceback and fails the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gankit.cli import main
from gankit.data import decode


@dataclass
class Case:
    name: str
    setup: Callable[[Path, dict], list]          # (work folder, fixtures) -> argv; may write the user's files
    expect: str = "error"                        # "error", "ok" or "either"
    needle: str = ""                             # a refused case's line must hold this
    check: Callable[[Path, dict], None] | None = None   # a done case's result, checked


class Corpus(list):
    """A file's cases; `corpus.case(...)` adds one."""

    def case(self, name, setup, expect="error", needle="", check=None) -> None:
        self.append(Case(name, setup, expect, needle, check))

    @property
    def ids(self) -> list[str]:
        return [c.name for c in self]


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_case(c: Case, fx, tmp_path: Path, capsys, monkeypatch) -> None:
    """Run one case in tmp_path/w and check the promise (the module docstring)."""
    monkeypatch.chdir(tmp_path)                       # a crafted file that ran code would leave a file here
    monkeypatch.setattr(decode, "MAX_PIXELS", decode.MAX_PIXELS)
    w = tmp_path / "w"
    w.mkdir()
    argv = [str(a) for a in c.setup(w, fx)]
    before = files(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:                           # argparse
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("pwned*")), "a crafted file ran code"
    if code == 2:
        assert c.expect in ("error", "either"), f"refused: {err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(("gankit: error:", "gankit ")), err
        assert c.needle in lines[0], f"{c.needle!r} not in {lines[0]!r}"
        assert files(tmp_path) == before, "a refused input changed or left files"
    else:
        assert code == 0 and c.expect in ("ok", "either"), f"exit {code}: {err}"
        changed = {p for p, data in before.items() if not p.exists() or p.read_bytes() != data}
        assert not changed, f"a user's file changed: {changed}"
        if c.check:
            c.check(w, fx)
