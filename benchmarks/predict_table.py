"""The table of docs/predict.md from the run folders benchmarks/predict.sh writes: one row per variant (the
folders NAME-sSEED of one NAME), each figure the mean ± the sample standard deviation over its seeds (± 0 and n 1
for one seed), then copying the last frame.

    python benchmarks/predict_table.py runs/predict
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = (("ssim", "SSIM", 4), ("ssim_best", "best-of-8 SSIM", 4), ("psnr", "PSNR", 2),
           ("psnr_best", "best-of-8 PSNR", 2), ("sharpness_ratio", "sharpness / real", 2),
           ("diversity", "diversity", 4))


def cell(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main(out: Path) -> None:
    groups = defaultdict(list)
    for f in sorted(out.glob("*-s[0-9]*/results.json")):
        name, seed = re.fullmatch(r"(.+)-s(\d+)", f.parent.name).groups()
        groups[name].append((int(seed), json.loads(f.read_text())))
    print("| variant | seeds | " + " | ".join(title for _, title, _ in COLUMNS) + " | train s |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    last = {}
    for name, runs in groups.items():
        rows = [r["rows"]["G"] for _, r in runs]
        secs = [r["train_seconds"] for _, r in runs]
        seeds = ",".join(str(s) for s, _ in runs)
        print(f"| {name} | {seeds} | " + " | ".join(cell([r[key] for r in rows], d) for key, _, d in COLUMNS)
              + f" | {statistics.mean(secs):.0f} |")
        last.setdefault(runs[0][1]["data"], runs[0][1]["rows"]["last frame"])
    for data, r in last.items():
        print(f"| last frame ({data}) | | " + " | ".join(f"{r[key]:.{d}f}" for key, _, d in COLUMNS) + " | |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/predict"))
