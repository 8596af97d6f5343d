"""`gankit runs [DIR]`: one line per run folder under DIR, to compare runs at a glance.

Each line comes from the run folder's own files, as training and `gankit eval` wrote them: config.yaml (the data, the
model, the steps asked for), metrics.jsonl (the steps done and the training time: the loop's clock `sec`, which
starts again at every resume, summed over the run's stretches) and the latest evaluation in eval/*.json (its FID
beside the real-vs-real floor, and the share of recognisable samples). `--sort METRIC` orders the runs by a result of
their latest evaluation, best first (lower first for the metrics where lower is better: config.KEEP_BEST). A folder that
is no run (no config.yaml) is left out; a damaged file leaves its columns empty, with the report's warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gankit import registry
from gankit.config import KEEP_BEST
from gankit.errors import UserError
from gankit.records import latest_evaluation, read_rows

COLUMNS = ("run", "data", "model", "steps", "fid (floor)", "recognisable", "time")
SORT_KEYS = ("name", "steps", "time")  # besides any result of an evaluation


@dataclass
class RunRow:
    name: str
    data: str = ""
    model: str = ""
    steps_done: int | None = None
    steps: int | None = None
    seconds: float | None = None
    results: dict = field(default_factory=dict)
    eval_step: int | None = None

    def cells(self) -> list[str]:
        fid, floor = self.results.get("fid"), self.results.get("fid_floor")
        rec = self.results.get("recognisable")
        steps = f"{self.steps_done if self.steps_done is not None else '?'}/{self.steps or '?'}"
        return [self.name, self.data, self.model, steps,
                "" if fid is None else f"{_num(fid)} ({_num(floor)})" + _at(self.eval_step, self.steps_done),
                "" if rec is None else f"{rec:.1%}" if isinstance(rec, float) else str(rec),
                "" if self.seconds is None else _clock(self.seconds)]


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def _at(eval_step, done) -> str:
    """' @N' when the evaluation is of an earlier step than the run's last (a --checkpoint, or best.pt)."""
    return f" @{eval_step}" if eval_step is not None and done is not None and eval_step != done else ""


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def training_seconds(rows: list[dict]) -> float | None:
    """The loop's clock over the whole run: `sec` counts from each (re)start, so each stretch's last value, summed
    (a resume row ends a stretch)."""
    total, stretch, seen = 0.0, 0.0, False
    for row in rows:
        if row.get("event") == "resume":
            total, stretch = total + stretch, 0.0
        sec = row.get("sec")
        if isinstance(sec, (int, float)) and not isinstance(sec, bool) and math.isfinite(sec):
            stretch, seen = max(stretch, float(sec)), True
    return total + stretch if seen else None


def read_run(folder: Path) -> RunRow:
    """One run folder's line."""
    row = RunRow(folder.name)
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        cfg = {}
    if isinstance(cfg, dict):
        row.data, row.model = str(cfg.get("data", "")), str(cfg.get("model", ""))
        task = registry.task(cfg.get("task", "gan"))
        if task is None or not task.named_by_model:
            row.model = f"{cfg.get('task')}/{row.model}"
        row.steps = cfg.get("steps") if isinstance(cfg.get("steps"), int) else None
    rows = read_rows(folder / "metrics.jsonl")[0] if (folder / "metrics.jsonl").is_file() else []
    trained = [r["step"] for r in rows if "event" not in r]
    row.steps_done = max(trained) if trained else (0 if (folder / "metrics.jsonl").is_file() else None)
    row.seconds = training_seconds(rows)
    record, _ = latest_evaluation(folder / "eval") if (folder / "eval").is_dir() else (None, 0)
    if record is not None:
        row.results = {k: v for k, v in record["results"].items() if isinstance(v, (int, float))}
        row.eval_step = record.get("step")
    return row


def list_runs(root: str | Path = "runs", sort: str = "name") -> list[RunRow]:
    """The runs under root (each sub-folder with a config.yaml), ordered by `sort`: name, steps, time, or a result
    of their latest evaluation (best first; runs without it last)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"runs: {root} is not a folder; give the folder that holds run folders (train's out)")
    rows = [read_run(p) for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.yaml").is_file()]
    if sort == "name":
        return rows
    if sort in ("steps", "time"):
        return sorted(rows, key=lambda r: -((r.steps_done if sort == "steps" else r.seconds) or 0))
    known = sorted({k for r in rows for k in r.results} | set(KEEP_BEST))
    if sort not in known:
        raise UserError(f"runs: cannot sort by {sort!r}; use {', '.join(SORT_KEYS)} or a result: {', '.join(known)}")
    lower = KEEP_BEST.get(sort, (None, False))[1]
    have = [r for r in rows if sort in r.results]
    return (sorted(have, key=lambda r: r.results[sort], reverse=not lower)
            + [r for r in rows if sort not in r.results])


def table(rows: list[RunRow], root: str | Path, sort: str = "name") -> str:
    """The runs as aligned text columns (a dozen lines of padding: no table library is needed for it), with the
    metric sorted by as a last column when it is not shown already, and how to compare their curves."""
    extra = sort not in ("name", "steps", "time", "fid", "recognisable")
    head = list(COLUMNS) + ([sort] if extra else [])
    body = [r.cells() + ([_num(r.results[sort]) if sort in r.results else ""] if extra else []) for r in rows]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head] + body]
    if not rows:
        lines = [f"no runs under {root}/ (a run folder holds config.yaml; train one with gankit train --out {root})"]
    lines.append(f"{len(rows)} run(s) under {root}/; compare their curves with: tensorboard --logdir {root}")
    return "\n".join(lines) + "\n"
