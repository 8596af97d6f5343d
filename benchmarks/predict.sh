#!/usr/bin/env bash
# Next-frame prediction: the smmnist-predict and mmnist-predict presets (a conditional GAN: adversarial loss plus
# l1_weight times L1) and the same networks with adv_weight 0 (the regression baseline), one seed each, at 1 thread,
# scored on the held-out sequences (digits training never saw): PSNR and SSIM (mean and best of 8), sharpness
# against the real frames', diversity of the 8 futures, beside copying the last frame. Then the GIFs of
# docs/predict/: context and 4 futures of held-out sequences, from the stochastic GAN run.
# Usage: bash benchmarks/predict.sh [MNIST_DIR] [OUT_DIR]   (log: benchmarks/predict.log)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/predict}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for variant in "smmnist-predict smmnist-gan" "smmnist-predict smmnist-regression --adv_weight 0" \
               "mmnist-predict mmnist-gan" "mmnist-predict mmnist-regression --adv_weight 0"; do
  set -- $variant
  preset=$1; name=$2; shift 2
  if [ -f "$out/$name/results.json" ]; then echo "$name: done before"; continue; fi
  start=$(date +%s)
  .venv/bin/gankit train --config "$preset" --data_dir "$data" --out "$out" --name "$name" --no-progress \
    --device cpu "$@"
  echo "$name: $(( $(date +%s) - start )) s wall"
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| data | predictor | SSIM | best-of-8 SSIM | PSNR | best-of-8 PSNR | sharpness / real | diversity | train s |")
print("|---|---|---|---|---|---|---|---|---|")
for data in ("smmnist", "mmnist"):
    rec = {v: json.loads((out / f"{data}-{v}" / "results.json").read_text()) for v in ("gan", "regression")}
    rows = [("GAN", rec["gan"]["rows"]["G"], rec["gan"]), ("regression", rec["regression"]["rows"]["G"],
            rec["regression"]), ("last frame", rec["gan"]["rows"]["last frame"], None)]
    for name, r, whole in rows:
        secs = whole["train_seconds"] if whole else ""
        print(f"| {data} | {name} | {r['ssim']:.4f} | {r['ssim_best']:.4f} | {r['psnr']:.2f} | {r['psnr_best']:.2f} "
              f"| {r['sharpness_ratio']:.2f} | {r['diversity']:.4f} | {secs} |")
PY
rm -rf "$out/gifs"
.venv/bin/gankit predict "$out/smmnist-gan" --context heldout --futures 4 --n 4 --out "$out/gifs"
mkdir -p docs/predict
cp "$out"/gifs/seq-000[0-3].gif docs/predict/
echo "docs/predict/: $(ls docs/predict)"
