"""Compare the runs of two folders made by benchmarks/short_runs.sh (two versions of gankit): every tensor of every
checkpoint (models, averaged copies, optimizers, RNG states), the records of metrics.jsonl (without their wall times)
and results.json (without its timings). Exit code 1 when anything differs.

    python benchmarks/compare_runs.py A B
"""

import json
import sys
from pathlib import Path

import torch

PARTS = ("G", "D", "G_ema", "D_ema", "opt_g", "opt_d", "rng")


def tensors(obj, path=""):
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{path}[{i}]")


def untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "sec" and "seconds" not in k}


def compare(a: Path, b: Path) -> list[str]:
    lines, same = [], True
    for ck in sorted((a / "checkpoints").glob("step-*.pt")):
        x, y = (torch.load(f, weights_only=True) for f in (ck, b / "checkpoints" / ck.name))
        tx = dict(t for part in PARTS for t in tensors(x.get(part), part))
        ty = dict(t for part in PARTS for t in tensors(y.get(part), part))
        differ = sorted(k for k in tx.keys() | ty.keys() if k not in tx or k not in ty or not torch.equal(tx[k], ty[k]))
        same &= not differ
        lines.append(f"  {ck.name}: {len(tx)} tensors, " + (f"{len(differ)} differ: {differ[:3]}" if differ else
                                                              "all identical"))
    rows = [[untimed(json.loads(line)) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (a, b)]
    same &= rows[0] == rows[1]
    lines.append(f"  metrics.jsonl: {len(rows[0])} rows, " + ("identical" if rows[0] == rows[1] else "differ"))
    if (a / "results.json").is_file():
        ra, rb = (untimed(json.loads((r / "results.json").read_text())) for r in (a, b))
        same &= ra == rb
        lines.append("  results.json: " + ("identical" if ra == rb else "differs"))
    return lines if same else lines + ["  DIFFERENT"]


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    failed = False
    for run in sorted(p.name for p in a.iterdir() if (p / "checkpoints").is_dir()):
        lines = compare(a / run, b / run)
        failed |= lines[-1] == "  DIFFERENT"
        print(run, *lines, sep="\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
