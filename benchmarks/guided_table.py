"""README's rows for D-guided sampling: per preset, each sampling option's final evaluation (written by
benchmarks/guided.sh), mean over seeds with each seed's value, the floor, and the cost per kept sample.

    python benchmarks/guided_table.py runs/guided/grid --metrics modes,hq_pct,reverse_kl
"""
import argparse
import json
import re
from pathlib import Path

VARIANTS = [("plain", ""), ("truncation 0.7", "-psi0.7"), ("drs", "-drs"), ("mh", "-mh"), ("ddls", "-ddls")]


def record(run: Path, suffix: str) -> dict | None:
    """The last step's record of one sampling option (step-NNNNNNN<suffix>.json)."""
    pattern = re.compile(rf"step-\d{{7}}{re.escape(suffix)}\.json")
    steps = sorted(p for p in run.glob("eval/step-*.json") if pattern.fullmatch(p.name))
    return json.loads(steps[-1].read_text()) if steps else None


def fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", type=Path, help="the folder of a preset's seed runs (s0, s1, ...)")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    metrics = args.metrics.split(",")
    runs = [r for r in sorted(args.preset.glob("s*/")) if record(r, "-drs")]  # the seeds whose run has finished
    print(f"| {args.preset.name} | {' | '.join(metrics)} | G / D passes per sample | seconds |")
    print(f"|---|{'---|' * (len(metrics) + 2)}")
    floor = None
    for label, suffix in VARIANTS:
        recs = [r for r in (record(run, suffix) for run in runs) if r]
        if not recs:
            continue
        floor = floor or recs[0]["results"]
        cells = []
        for m in metrics:
            vals = [r["results"][m] for r in recs if m in r["results"]]
            mean = sum(vals) / len(vals) if vals else float("nan")
            cells.append(f"{fmt(mean)} ({', '.join(fmt(v) for v in vals)})" if len(vals) > 1 else fmt(mean))
        costs = [r.get("guide_cost") for r in recs]
        cost = (f"{costs[0]['g_per_sample']} / {costs[0]['d_per_sample']}" if costs[0] else "1 / 0")
        secs = costs[0]["seconds"] if costs[0] else ""
        print(f"| {label} ({len(recs)} seeds) | {' | '.join(cells)} | {cost} | {secs} |")
    if floor:
        print(f"| real data (floor) | {' | '.join(fmt(floor.get(m + '_floor', '')) for m in metrics)} | | |")


if __name__ == "__main__":
    main()
