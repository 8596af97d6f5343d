"""Combine the three ablations of benchmarks/tricks.sh into README's tricks table (markdown on stdout).

Usage: python benchmarks/tricks_table.py runs/tricks
"""
import csv
import sys
from pathlib import Path

COLUMNS = {  # ablation folder -> the metrics shown, and a short label for each
    "tricks-ring": [("modes", "modes"), ("hq_pct", "HQ %"), ("reverse_kl", "rev. KL")],
    "tricks-grid": [("modes", "modes"), ("hq_pct", "HQ %"), ("reverse_kl", "rev. KL")],
    "tricks-digits": [("fid", "FID"), ("recall", "recall")],
}


def fmt(row, key):
    if not row or not row.get(key):
        return "–"
    mean, se = float(row[key]), float(row.get(f"{key}_se") or 0)
    d = 1 if abs(mean) >= 10 else 2 if abs(mean) >= 1 else 3
    return f"{mean:.{d}f} ± {se:.{d}f}" if se else f"{mean:.{d}f}"


def main(root: Path) -> None:
    tables, order = {}, []
    for name in COLUMNS:
        f = root / name / "summary.csv"
        rows = list(csv.DictReader(open(f))) if f.is_file() else []
        tables[name] = {r["cell"]: r for r in rows}
        order += [r["cell"] for r in rows if r["cell"] not in order]
    head = ["setting"] + [f"{n.split('-')[1]} {label}" for n, cols in COLUMNS.items() for _, label in cols]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for cell in order:
        vals = [fmt(tables[n].get(cell), key) for n, cols in COLUMNS.items() for key, _ in cols]
        print(f"| {cell} | " + " | ".join(vals) + " |")
    floors = [(n, tables[n].get("base", {})) for n in COLUMNS]
    print("\nReal-vs-real floors at the same sample count: " + "; ".join(
        f"{n.split('-')[1]} " + ", ".join(f"{label} {fmt(row, key + '_floor')}" for key, label in COLUMNS[n])
        for n, row in floors if row))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tricks"))
