"""The one policy for what a command writes.

A file a command would write that already exists is refused with one line naming it, unless the command is given
`--force`, which replaces it (a folder output is never emptied: only the files the command writes are replaced).
Names gankit picks itself are numbered instead of clashing (a default run name, `gankit eval`'s records). Every
file is written to a temporary name beside it and renamed into place, so a failure (a full disk, Ctrl-C) leaves the
old file or none, never half of one, and nothing a half-written output could block.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Callable

from gankit.errors import UserError


def check_new(command: str, *paths: Path, force: bool = False) -> None:
    """Refuse before any work when an output file exists (unless force) or a folder stands where it would go."""
    for p in map(Path, paths):
        if p.is_dir():
            raise UserError(f"{command}: {p} is a folder; give a file name")
        if (p.exists() or p.is_symlink()) and not force:
            raise UserError(f"{command}: {p} exists; pass --force to replace it (nothing is overwritten without it)")
        parent = _existing_ancestor(p.parent)
        if parent is not None and not parent.is_dir():
            raise UserError(f"{command}: {parent} is a file, so {p} cannot be written")


def out_folder(command: str, folder: Path) -> Path:
    """An output folder: made when missing (with its parents); a file in its place is an error."""
    folder = Path(folder)
    blocker = _existing_ancestor(folder)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"{command}: {blocker} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def writable(command: str, folder: Path) -> None:
    """Probe that files can be made in `folder` (before long work whose results would otherwise be lost)."""
    probe = Path(folder) / f".gankit-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{command}: cannot write into {folder} ({e.strerror or type(e).__name__})") from None


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the whole file at a temporary name in the same folder; it is flushed to disk, then renamed
    to `path`. The one way gankit writes a file: os.replace is atomic on POSIX and Windows, and the fsync before it
    makes sure that after a power cut the name points at the whole new file or the old one, never at half."""
    path = Path(path)
    # the suffix stays last: PIL and numpy pick the format from it
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks: what exported and shipped weights are checked against."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _existing_ancestor(p: Path) -> Path | None:
    """The nearest of p and its parents that exists."""
    for q in [p, *p.parents]:
        if q.exists():
            return q
    return None
