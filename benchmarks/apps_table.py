"""The README's tables of the applications, from the results.json files the benchmark scripts leave.

Usage: python benchmarks/apps_table.py ssl|inpaint|sr OUT_DIR
"""
import json
import statistics
import sys
from pathlib import Path


def ssl(out: Path) -> str:
    runs = sorted(out.glob("ssl-s*/results.json"))
    rows = [json.loads(p.read_text()) for p in runs]
    lines = ["| seed | held-out error, ssl GAN | supervised CNN, same labels | training time |", "|---|---|---|---|"]
    for p, r in zip(runs, rows):
        lines.append(f"| {p.parent.name[5:]} | {r['held_out_error']:.2%} | {r['baseline_error']:.2%} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    if len(rows) > 1:
        def ms(key):
            v = [r[key] for r in rows]
            return f"{statistics.mean(v):.2%} ± {statistics.stdev(v) / len(v) ** 0.5:.2%}"
        lines.append(f"| mean ± s.e. | {ms('held_out_error')} | {ms('baseline_error')} | |")
    r = rows[0]
    return (f"{r['labelled']} labels, {r['unlabelled']} unlabelled, {r['held_out']} held out\n\n" + "\n".join(lines))


def inpaint(out: Path) -> str:
    parts = []
    for mask in ("center", "random", "half"):
        p = out / f"inpaint-{mask}" / "results.json"
        if p.is_file():
            r = json.loads(p.read_text())
            lines = [f"mask {mask}, {r['n']} held-out images", "", "| hole filled by | class accuracy | PSNR on the "
                     "hole (dB) |", "|---|---|---|"]
            for name, row in r["rows"].items():
                ps = f"{row['psnr_hole']:.2f}" if "psnr_hole" in row else ""
                lines.append(f"| {name} | {row['class_acc']:.2%} | {ps} |")
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def sr(out: Path) -> str:
    gan = json.loads((out / "sr-gan" / "results.json").read_text())
    res = json.loads((out / "sr-resnet" / "results.json").read_text())
    rows = {"bicubic": gan["rows"]["bicubic"], "SRResNet (content loss only, adv_weight 0)": res["rows"]["G"],
            "SRGAN (mnist-sr preset)": gan["rows"]["G"], "originals": gan["rows"]["originals"]}
    lines = [f"{gan['n']} held-out images, {28 // gan['scale']} -> 28 px", "",
             "| images | PSNR (dB) | SSIM | class accuracy | FID |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        ps = "" if r["psnr"] == float("inf") else f"{r['psnr']:.2f}"
        lines.append(f"| {name} | {ps} | {r['ssim']:.4f} | {r['class_acc']:.2%} | {r['fid']:.3g} |")
    times = f"training: SRGAN {gan['train_seconds'] / 60:.1f} min, SRResNet {res['train_seconds'] / 60:.1f} min"
    return "\n".join(lines) + "\n\n" + times


if __name__ == "__main__":
    print({"ssl": ssl, "inpaint": inpaint, "sr": sr}[sys.argv[1]](Path(sys.argv[2])))
