"""Ablations: train a grid of settings over several seeds, in parallel processes, and tabulate the evaluations.

    gankit ablate --config ring --vary norm=batch,virtual_batch,none --seeds 5

Each cell of the grid is a set of field values; each (cell, seed) is one ordinary `gankit train` run in its own
process, under <out>/<name>/runs/. The table gives the mean and standard error over seeds of every metric the runs
evaluated at their end, plus the training time.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from gankit import config as config_mod, outputs
from gankit.errors import UserError
from gankit.run import numbered

# Shorthands that set several fields at once.
ALIASES = {"norm": ("g_norm", "d_norm"), "act": ("g_act", "d_act"), "lr": ("g_lr", "d_lr")}
log = logging.getLogger("gankit")


@dataclass
class Cell:
    name: str
    values: dict


def parse_vary(items: list[str]) -> list[list[tuple[str, dict]]]:
    """`field=a,b,c` -> one axis of (label, {field: value}). Aliases such as norm= set several fields. An axis
    needs at least one value, each value once; seed is not a field to vary (--seeds gives every setting its
    seeds)."""
    axes = []
    for item in items:
        if "=" not in item:
            raise UserError(f"ablate: --vary expects FIELD=V1,V2,..., got {item!r}")
        key, values = item.split("=", 1)
        fields = ALIASES.get(key, (key,))
        for f in fields:
            if f not in config_mod.FIELDS:
                raise UserError(f"ablate: --vary {key}: unknown field; use a config field or one of "
                                f"{', '.join(ALIASES)}")
        _not_seed(fields, f"--vary {key}")
        given = [v for v in values.split(",") if v.strip() != ""]
        if not given:
            raise UserError(f"ablate: --vary {key}= names no value; give {key}=V1,V2,...")
        twice = sorted({v for v in given if given.count(v) > 1})
        if twice:
            raise UserError(f"ablate: --vary {key}: {', '.join(twice)} given twice; each value once (a repeated "
                            "setting would count as more seeds than ran)")
        axes.append([(f"{key}={v}", {f: v for f in fields}) for v in given])
    return axes


def _not_seed(fields, where: str) -> None:
    if "seed" in fields:
        raise UserError(f"ablate: {where}: every setting runs seeds 0..N-1 (--seeds N), so seed is not a field to "
                        "vary or set; use --seeds")


def parse_variant(items: list[str]) -> list[tuple[str, dict]]:
    """`label:field=v;field=v` -> one axis whose settings change several fields together."""
    axis = []
    for item in items:
        label, colon, body = item.partition(":")
        if not colon or not label:
            raise UserError(f"ablate: --variant expects LABEL:FIELD=V;FIELD=V (or LABEL: for the base), got {item!r}")
        if label in [a[0] for a in axis]:
            raise UserError(f"ablate: --variant {label}: the label is given twice; each variant needs its own")
        values = {}
        for pair in filter(None, body.split(";")):
            key, eq, value = pair.partition("=")
            if not eq:
                raise UserError(f"ablate: --variant {label}: {pair!r} is not FIELD=V")
            _not_seed(ALIASES.get(key, (key,)), f"--variant {label}")
            for f in ALIASES.get(key, (key,)):
                values[f] = value
        axis.append((label, values))
    return axis


def build_cells(base: dict, vary: list[str], variants: list[str]) -> list[Cell]:
    """Every combination of the axes, each validated; refused when the base sets seed, when two axes set one field
    (the later would silently win) or when two cells come out the same config (1e-3 and 0.001)."""
    if "seed" in base:
        _not_seed(("seed",), f"seed {base['seed']} in the base config")
    axes = parse_vary(vary)
    if variants:
        axes.append(parse_variant(variants))
    if not axes:
        return [Cell("base", {})]
    owner: dict[str, int] = {}  # field -> the axis (its id) that sets it
    for axis in axes:
        for f in {f for _, values in axis for f in values}:
            if f in owner and owner[f] != id(axis):
                raise UserError(f"ablate: {f} is set by two axes (--vary/--variant); set each field on one axis")
            owner[f] = id(axis)
    cells, seen = [], []
    for combo in itertools.product(*axes):
        values = {}
        for _, v in combo:
            values.update(v)
        cfg = config_mod.load(None, {**base, **values})  # validate every cell before anything runs
        name = " ".join(label for label, _ in combo)
        same = next((other for c, other in seen if c == cfg), None)
        if same is not None:
            raise UserError(f"ablate: the settings {same!r} and {name!r} are the same config; give each setting "
                            "once")
        seen.append((cfg, name))
        cells.append(Cell(name, values))
    return cells


def _final_eval(run_dir: Path) -> dict:
    """The last eval/* values and the loop's clock from a run's metrics.jsonl; a damaged line (a run killed
    mid-write) is skipped, named by file and line in one warning."""
    path = run_dir / "metrics.jsonl"
    out, bad = {}, []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            bad.append(number)
            continue
        if not isinstance(row, dict):
            bad.append(number)
            continue
        out.update({k[5:]: v for k, v in row.items() if k.startswith("eval/") and _number(v)})
        if "sec" in row and _number(row["sec"]):
            out["train_sec"] = row["sec"]  # the training loop's own clock, without start-up and evaluation
    if bad:
        log.warning(f"ablate: skipped {len(bad)} damaged line(s) of {path} (line {', '.join(map(str, bad[:5]))}"
                    + (", ..." if len(bad) > 5 else "") + ")")
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def run_ablation(base: dict, cells: list[Cell], seeds: list[int], out: Path, jobs: int,
                 extra_env: dict | None = None, threads: int | None = None) -> tuple[Path, list[dict]]:
    """Run every (cell, seed); returns the folder and one row per run. Each run gets `threads` intra-op threads
    (default: the cores shared out among the jobs)."""
    from tqdm import tqdm

    if out.exists():
        raise UserError(f"ablate: {out} exists; choose another --name (nothing is overwritten)")
    (out / "runs").mkdir(parents=True)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **(extra_env or {})}
    plan = json.dumps({"base": base, "cells": [c.__dict__ for c in cells], "seeds": seeds}, indent=1)
    outputs.write_atomic(out / "ablation.json", lambda tmp: tmp.write_text(plan))

    def one(ci: int, cell: Cell, seed: int) -> dict:
        name = f"c{ci:02d}-s{seed}"
        args = [sys.executable, "-m", "gankit", "train", "--no-progress", "--out", str(out / "runs"), "--name", name]
        for k, v in {**base, **cell.values}.items():
            if k != "seed":
                args += [f"--{k}", str(v)]
        args += ["--seed", str(seed)]  # last: the run's seed is the ablation's, whatever base or cell holds
        t0 = time.time()
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        row = {"cell": cell.name, "seed": seed, "run": name, "seconds": round(time.time() - t0, 1),
               "ok": proc.returncode == 0}
        if proc.returncode == 0:
            row.update(_final_eval(out / "runs" / name))
        else:
            row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return row

    rows = []
    # seed-major, so that an interrupted ablation (see --summarise) has every setting at least once
    tasks = [(ci, cell, seed) for seed in seeds for ci, cell in enumerate(cells)]
    with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(tasks), desc="ablate", unit="run") as bar:
        futures = [pool.submit(one, *t) for t in tasks]
        for f in as_completed(futures):
            rows.append(f.result())
            bar.update(1)
    order = {c.name: i for i, c in enumerate(cells)}
    rows.sort(key=lambda r: (order[r["cell"]], r["seed"]))
    return out, rows


def collect(folder: Path) -> tuple[list[Cell], list[dict]]:
    """Rebuild the rows of an ablation folder from its runs, finished or not (for an interrupted ablation)."""
    meta_file = Path(folder) / "ablation.json"
    if not meta_file.is_file():
        raise UserError(f"ablate: {folder} is not an ablation folder (no ablation.json)")
    cells, seeds = _read_meta(meta_file)
    rows = []
    for ci, cell in enumerate(cells):
        for seed in seeds:
            run = Path(folder) / "runs" / f"c{ci:02d}-s{seed}"
            if not (run / "metrics.jsonl").is_file():
                continue
            row = {"cell": cell.name, "seed": seed, "run": run.name, **_final_eval(run)}
            row["ok"] = (run / "checkpoints" / "latest.pt").is_file() and len(row) > 4
            rows.append(row)
    return cells, rows


def _read_meta(path: Path) -> tuple[list[Cell], list[int]]:
    """ablation.json's cells and seeds, refused in one line naming the file when it is damaged."""
    fail = f"ablate: {path} is damaged ({{}}); it cannot be summarised"
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise UserError(fail.format("not UTF-8 JSON")) from None
    try:
        cells, seeds = [Cell(c["name"], c["values"]) for c in meta["cells"]], list(meta["seeds"])
    except (KeyError, TypeError):
        cells, seeds = [], None
    if not cells or seeds is None or not all(isinstance(c.name, str) and isinstance(c.values, dict) for c in cells) \
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UserError(fail.format("not the cells and seeds that `gankit ablate` writes"))
    for kind, items in (("setting", [c.name for c in cells]), ("seed", seeds)):
        twice = sorted({str(i) for i in items if items.count(i) > 1})
        if twice:
            raise UserError(fail.format(f"the {kind} {', '.join(twice)} is named twice"))
    return cells, seeds


def summarise(cells: list[Cell], rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Mean and standard error over seeds for every metric; columns in first-seen order."""
    metrics: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in ("cell", "seed", "run", "ok", "error") and isinstance(v, (int, float)) and k not in metrics:
                metrics.append(k)
    summary = []
    for cell in cells:
        runs = [r for r in rows if r["cell"] == cell.name]
        ok = [r for r in runs if r["ok"]]
        entry = {"cell": cell.name, "runs": len(runs), "failed": len(runs) - len(ok)}
        for m in metrics:
            vals = [r[m] for r in ok if isinstance(r.get(m), (int, float))]
            if vals:
                mean = sum(vals) / len(vals)
                se = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) if len(vals) > 1 else 0.0
                entry[m], entry[f"{m}_se"] = mean, se
        summary.append(entry)
    return metrics, summary


def write_tables(out: Path, rows: list[dict], metrics: list[str], summary: list[dict], title: str) -> tuple[Path, Path]:
    keys = ["cell", "seed", "run", "ok", "seconds"] + [m for m in metrics if m != "seconds"] + ["error"]
    outputs.write_atomic(out / "runs.csv", lambda tmp: _write_csv(tmp, keys, rows))
    skeys = ["cell", "runs", "failed"] + [k for m in metrics for k in (m, f"{m}_se")]
    outputs.write_atomic(out / "summary.csv", lambda tmp: _write_csv(tmp, skeys, summary))
    lines = [f"## {title}", "", "mean ± standard error over seeds", "",
             "| setting | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for s in summary:
        cells = []
        for m in metrics:
            cells.append(f"{_fmt(s[m])} ± {_fmt(s[m + '_se'])}" if m in s else "n/a")
        failed = f" ({s['failed']} of {s['runs']} failed)" if s["failed"] else ""
        lines.append(f"| {s['cell']}{failed} | " + " | ".join(cells) + " |")
    outputs.write_atomic(out / "table.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return out / "table.md", out / "summary.csv"


def _write_csv(path: Path, keys: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def ablate(config: str | None, fields: dict, vary: list[str], variants: list[str], seeds: int = 3,
           jobs: int | None = None, threads: int | None = None) -> dict:
    """The whole ablation, as `gankit ablate` runs it: the base of every run is `config` (a YAML file or a preset)
    with `fields` over it; its folder is fields' out/name, or a new numbered out/ablate-DATA. Every (cell, seed) is
    trained (`jobs` in parallel, all cores by default) and tabulated. Returns the folder, the table (markdown text),
    the files written, and whether every run finished."""
    fields = dict(fields)
    out_root, name = Path(fields.pop("out", "runs")), fields.pop("name", "")
    base = {**(config_mod.read_yaml(config) if config else {}), **fields}
    base.pop("name", None), base.pop("out", None)
    config_mod.load(None, base)
    cells = build_cells(base, vary, variants)
    if not name:
        data = str(base.get("data", "digits")).replace("folder:", "").replace("/", "_")
        name = numbered(out_root, f"ablate-{data}").name
    jobs = jobs or min(os.cpu_count() or 1, len(cells) * seeds)
    folder, rows = run_ablation(base, cells, list(range(seeds)), out_root / name, jobs, threads=threads)
    metrics, summary = summarise(cells, rows)
    table, csv_path = write_tables(folder, rows, metrics, summary,
                                   f"{base.get('data', 'digits')}: " + " x ".join(vary + variants))
    return {"folder": folder, "table": table.read_text(), "files": [table, csv_path, folder / "runs.csv"],
            "ok": all(r["ok"] for r in rows)}


def rebuild_tables(folder: Path) -> str:
    """The tables of an existing (possibly interrupted) ablation folder, written again from its runs; returns the
    markdown table."""
    folder = Path(folder)
    cells, rows = collect(folder)
    metrics, summary = summarise(cells, rows)
    table, _ = write_tables(folder, rows, metrics, summary, folder.name)
    return table.read_text()


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
