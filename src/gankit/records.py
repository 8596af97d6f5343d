"""What a run folder's records hold, read without torch: metrics.jsonl's rows and the latest eval/*.json. `gankit
report`, `gankit runs` and `gankit serve` read them; `gankit runs` imports nothing heavier than this and the config,
so that listing runs is instant."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

log = logging.getLogger("gankit")

MAX_STEP = 2**62                     # a step past this is no step a run reached


def read_rows(path: Path, warn=None) -> tuple[list[dict], int]:
    """metrics.jsonl as a list of dicts, and how many lines were skipped: lines that are not UTF-8 or not JSON (a
    run killed mid-write can leave half a line), not an object, or without a step that is a whole number >= 0.
    `warn(text)` gets one line naming the file and the first skipped lines (the log's warning by default): a report
    of a long run is not lost to one bad line, and no bad line is dropped without a word."""
    rows, bad = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        why = None
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            why = "not UTF-8"
        else:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                why = "not JSON"
            else:
                why = _bad_row(row)
        if why:
            bad.append(f"line {number}: {why}")
        else:
            rows.append(row)
    if bad:
        (warn or log.warning)(f"report: skipped {len(bad)} damaged line(s) of {path} ({'; '.join(bad[:3])}"
                              + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "") + ")")
    return rows, len(bad)


def _bad_row(row) -> str | None:
    """Why a parsed line is no record, or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if "step" not in row:
        return "no step"
    step = row["step"]
    if isinstance(step, float) and math.isfinite(step) and step.is_integer() and 0 <= step <= MAX_STEP:
        step = row["step"] = int(step)                      # 4.0, as some writers give an int
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        return f"step {_short(step)} is not a whole number >= 0"
    for k, v in list(row.items()):  # a number too large for a float (1e400 is inf; a 400-digit int fails)
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**1000:
            return f"{_short(k)} is {len(str(v))} digits long"
    return None


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def latest_evaluation(folder: Path, warn=None) -> tuple[dict | None, int]:
    """The newest readable RUN/eval/*.json (highest step, then the latest written), and how many there are. A file
    that is no evaluation record (not UTF-8 JSON, no `results` object, a step that is not a whole number >= 0) is
    skipped, and named in one warning line."""
    records, bad = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            bad.append(f"{path.name}: {'not UTF-8' if isinstance(e, UnicodeDecodeError) else 'not JSON'}")
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(record, dict) or not isinstance(record.get("results"), dict):
            bad.append(f"{path.name}: no results")
        elif step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP):
            bad.append(f"{path.name}: step {_short(step)} is not a whole number >= 0")
        else:
            records.append((step or 0, path.stat().st_mtime, path.name, record))
    if bad:
        (warn or log.warning)(f"report: skipped {len(bad)} damaged evaluation record(s) in {folder} "
                              f"({'; '.join(bad[:3])}" + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "") + ")")
    if not records:
        return None, 0
    *_, name, record = max(records, key=lambda r: r[:3])
    return {**record, "file": name}, len(records)
