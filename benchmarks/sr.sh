#!/usr/bin/env bash
# Super-resolution: the mnist-sr preset (SRGAN, 7 -> 28 px) and the same with adv_weight 0 (SRResNet: the content
# loss alone), each trained on 9,000 MNIST images and scored on the 1,000 held out: PSNR, SSIM, class accuracy by
# gankit's MNIST classifier and FID in its feature space, beside bicubic upscaling.
# Usage: bash benchmarks/sr.sh [MNIST_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/apps}
for variant in "sr-gan" "sr-resnet --adv_weight 0"; do
  set -- $variant
  name=$1; shift
  start=$(date +%s)
  OMP_NUM_THREADS=1 .venv/bin/gankit train --config mnist-sr --data_dir "$data" --out "$out" --name "$name" \
    --no-progress "$@"
  echo "$name: $(( $(date +%s) - start )) s"
done
.venv/bin/python benchmarks/apps_table.py sr "$out"
