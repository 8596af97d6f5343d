"""One README table row from run folders: the final evaluation of each run (the last eval row of its
metrics.jsonl), mean ± standard error over the runs, and the real-vs-real floors beside them.

    python benchmarks/runs_table.py RUN [RUN ...] --metrics fid,precision,recall [--label mnist]

For runs that were not made by `gankit ablate` (whose folders benchmarks/table.py reads), e.g. seeds trained one by
one with `gankit train --config mnist --seed N`.
"""
import argparse
import json
import math
from pathlib import Path


def final_eval(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    if not evals:
        raise SystemExit(f"{run}: no evaluation in metrics.jsonl")
    return {k[len("eval/"):]: v for k, v in evals[-1].items() if k.startswith("eval/")}


def mean_se(values: list[float]) -> str:
    n = len(values)
    m = sum(values) / n
    se = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0
    d = 1 if abs(m) >= 10 else 2 if abs(m) >= 1 else 3 if abs(m) >= 0.01 else 4
    return f"{m:.{d}f} ± {se:.{d}f}" if n > 1 else f"{m:.{d}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--label", default="runs")
    args = ap.parse_args()
    metrics = args.metrics.split(",")
    evals = [final_eval(r) for r in args.runs]
    cells = [mean_se([e[m] for e in evals]) if all(m in e for e in evals) else "–" for m in metrics]
    floors = [mean_se([e[f"{m}_floor"] for e in evals]) if all(f"{m}_floor" in e for e in evals) else ""
              for m in metrics]
    print(f"| | {' | '.join(metrics)} |\n|---|{'---|' * len(metrics)}")
    print(f"| {args.label} ({len(evals)} runs) | {' | '.join(cells)} |")
    print(f"| real-vs-real floor | {' | '.join(floors)} |")
    for run, e in zip(args.runs, evals):
        print(f"| {run.name} | {' | '.join(str(round(e[m], 4)) if m in e else '–' for m in metrics)} |")


if __name__ == "__main__":
    main()
