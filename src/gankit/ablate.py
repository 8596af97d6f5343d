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
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from gankit import config as config_mod
from gankit.errors import UserError

# Shorthands that set several fields at once.
ALIASES = {"norm": ("g_norm", "d_norm"), "act": ("g_act", "d_act"), "lr": ("g_lr", "d_lr")}


@dataclass
class Cell:
    name: str
    values: dict


def parse_vary(items: list[str]) -> list[list[tuple[str, dict]]]:
    """`field=a,b,c` -> one axis of (label, {field: value}). Aliases such as norm= set several fields."""
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
        axes.append([(f"{key}={v}", {f: v for f in fields}) for v in values.split(",") if v != ""])
    return axes


def parse_variant(items: list[str]) -> list[tuple[str, dict]]:
    """`label:field=v;field=v` -> one axis whose settings change several fields together."""
    axis = []
    for item in items:
        label, colon, body = item.partition(":")
        if not colon or not label:
            raise UserError(f"ablate: --variant expects LABEL:FIELD=V;FIELD=V (or LABEL: for the base), got {item!r}")
        values = {}
        for pair in filter(None, body.split(";")):
            key, eq, value = pair.partition("=")
            if not eq:
                raise UserError(f"ablate: --variant {label}: {pair!r} is not FIELD=V")
            for f in ALIASES.get(key, (key,)):
                values[f] = value
        axis.append((label, values))
    return axis


def build_cells(base: dict, vary: list[str], variants: list[str]) -> list[Cell]:
    axes = parse_vary(vary)
    if variants:
        axes.append(parse_variant(variants))
    if not axes:
        return [Cell("base", {})]
    cells = []
    for combo in itertools.product(*axes):
        values = {}
        for _, v in combo:
            values.update(v)
        config_mod.load(None, {**base, **values})  # validate every cell before anything runs
        cells.append(Cell(" ".join(label for label, _ in combo), values))
    return cells


def _final_eval(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out = {}
    for row in rows:
        out.update({k[5:]: v for k, v in row.items() if k.startswith("eval/")})
        if "sec" in row:
            out["train_sec"] = row["sec"]  # the training loop's own clock, without start-up and evaluation
    return out


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
    (out / "ablation.json").write_text(json.dumps({"base": base, "cells": [c.__dict__ for c in cells],
                                                   "seeds": seeds}, indent=1))

    def one(ci: int, cell: Cell, seed: int) -> dict:
        name = f"c{ci:02d}-s{seed}"
        args = [sys.executable, "-m", "gankit", "train", "--no-progress", "--out", str(out / "runs"),
                "--name", name, "--seed", str(seed)]
        for k, v in {**base, **cell.values}.items():
            args += [f"--{k}", str(v)]
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
    meta = json.loads(meta_file.read_text())
    cells = [Cell(c["name"], c["values"]) for c in meta["cells"]]
    rows = []
    for ci, cell in enumerate(cells):
        for seed in meta["seeds"]:
            run = Path(folder) / "runs" / f"c{ci:02d}-s{seed}"
            if not (run / "metrics.jsonl").is_file():
                continue
            row = {"cell": cell.name, "seed": seed, "run": run.name, **_final_eval(run)}
            row["ok"] = (run / "checkpoints" / "latest.pt").is_file() and len(row) > 4
            rows.append(row)
    return cells, rows


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
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    skeys = ["cell", "runs", "failed"] + [k for m in metrics for k in (m, f"{m}_se")]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=skeys, extrasaction="ignore")
        w.writeheader()
        w.writerows(summary)
    lines = [f"## {title}", "", "mean ± standard error over seeds", "",
             "| setting | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for s in summary:
        cells = []
        for m in metrics:
            cells.append(f"{_fmt(s[m])} ± {_fmt(s[m + '_se'])}" if m in s else "n/a")
        failed = f" ({s['failed']} of {s['runs']} failed)" if s["failed"] else ""
        lines.append(f"| {s['cell']}{failed} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    return out / "table.md", out / "summary.csv"


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
