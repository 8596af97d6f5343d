"""README tables from `gankit ablate` folders: one row per setting, mean ± standard error over seeds, and a floor row.

    python benchmarks/table.py ABLATION_DIR [ABLATION_DIR ...] --metrics fid,precision,recall [--floors] [--time]

Columns are the metrics asked for (each ablation's summary.csv); --floors adds a row with each metric's real-vs-real
floor (from the first ablation), --time the training loop's seconds. A metric a folder lacks shows as "–".
"""
import argparse
import csv
from pathlib import Path


def fmt(mean, se=None) -> str:
    if mean in (None, ""):
        return "–"
    mean = float(mean)
    d = 1 if abs(mean) >= 10 else 2 if abs(mean) >= 1 else 3
    if abs(mean) < 0.01 and mean != 0:
        d = 4
    se = float(se) if se not in (None, "") else 0.0
    return f"{mean:.{d}f} ± {se:.{d}f}" if se else f"{mean:.{d}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--floors", action="store_true")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--label", action="append", default=[], help="FOLDER_NAME:CELL=LABEL renames a row")
    args = ap.parse_args()
    names = args.metrics.split(",")
    labels = dict(item.split("=", 1) for item in args.label)
    head = ["setting", "seeds"] + (["training, s"] if args.time else []) + names
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    first = None
    for folder in args.folders:
        for row in csv.DictReader(open(folder / "summary.csv")):
            first = first or row
            key = f"{folder.name}:{row['cell']}"
            label = labels.get(key, key if len(args.folders) > 1 else row["cell"])
            cells = [label, row["runs"]] + ([fmt(row.get("train_sec"), row.get("train_sec_se"))] if args.time else [])
            cells += [fmt(row.get(m), row.get(f"{m}_se")) for m in names]
            print("| " + " | ".join(cells) + " |")
    if args.floors and first:
        cells = ["real vs real (floor)", ""] + ([""] if args.time else [])
        cells += [fmt(first.get(f"{m}_floor"), first.get(f"{m}_floor_se")) for m in names]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
