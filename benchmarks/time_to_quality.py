"""The time-to-quality table and curve: for each run, each evaluated checkpoint's training minutes (metrics.jsonl's
`sec`, the training loop's clock, at that step), recognisable share, precision and class KL where measured, and
FID with its floor; writes docs/img/time_to_quality.png (or --png PATH; --title names the data set).

    python benchmarks/time_to_quality.py [--title MNIST] [--png PATH] [LABEL=]RUN ...
    e.g. preset=runs/ttq/preset examples=runs/ttq/examples
"""
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def points(run: Path) -> list[tuple[int, float, dict]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    elapsed = {r["step"]: r["sec"] for r in rows if "sec" in r}  # the loop's clock since the run started
    out = []
    for p in sorted(p for p in (run / "eval").glob("step-*.json") if re.fullmatch(r"step-\d{7}\.json", p.name)):
        rec = json.loads(p.read_text())
        step = rec["step"]
        near = min(elapsed, key=lambda s: abs(s - step))  # the log row at (or next to) the checkpoint's step
        out.append((step, elapsed[near] / 60, rec["results"]))
    return out


def main() -> None:
    # RUN or LABEL=RUN
    args, opts = sys.argv[1:], {"--title": "MNIST", "--png": "docs/img/time_to_quality.png"}
    while args and args[0] in opts:
        opts[args[0]], args = args[1], args[2:]
    runs = [(a.split("=", 1) if "=" in a else (Path(a).name, a)) for a in args]
    runs = [(label, Path(path)) for label, path in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    print("| recipe | step | training minutes | recognisable | precision | class KL | FID | FID floor |\n"
          "|---|---|---|---|---|---|---|---|")
    for label, run in runs:
        pts = points(run)
        for step, minutes, r in pts:
            extra = " | ".join(f"{r[k]:.{d}f}" if k in r else "" for k, d in (("precision", 3), ("class_kl", 4)))
            print(f"| {label} | {step} | {minutes:.2f} | {100 * r['recognisable']:.1f} % | {extra} | {r['fid']:.2f} | "
                  f"{r['fid_floor']:.2f} |")
        ax1.plot([p[1] for p in pts], [100 * p[2]["recognisable"] for p in pts], "o-", label=label)
        ax2.plot([p[1] for p in pts], [p[2]["fid"] for p in pts], "o-", label=label)
    if runs and pts:
        ax1.axhline(100 * pts[-1][2]["recognisable_floor"], ls="--", c="k", lw=0.8, label="real images")
        ax2.axhline(pts[-1][2]["fid_floor"], ls="--", c="k", lw=0.8, label="floor (real vs real)")
    ax1.set(xlabel="training minutes", ylabel="recognisable %", title=f"{opts['--title']}: recognisable share")
    ax2.set(xlabel="training minutes", ylabel="FID (classifier features)", yscale="log", title=f"{opts['--title']}: FID")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(opts["--png"])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
