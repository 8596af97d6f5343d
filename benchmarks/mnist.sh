#!/usr/bin/env bash
# The MNIST benchmark: the mnist (DCGAN) and mnist-cond (conditional DCGAN, projection D) presets, each trained
# once on MNIST's 10k test split (the only split in ../shared/data/mnist, so it is the training data here), then
# scored by `gankit eval` against the same split, with the real-vs-real floor beside every metric.
# Usage: bash benchmarks/mnist.sh [MNIST_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/mnist}
g=.venv/bin/gankit
for preset in mnist mnist-cond; do
  start=$(date +%s)
  $g train --config "$preset" --data_dir "$data" --out "$out" --name "$preset" --no-progress
  echo "$preset: trained in $(( $(date +%s) - start )) s (fresh process to end of final evaluation)"
done
$g eval "$out/mnist" --metrics fid,kid,pr,dc
$g eval "$out/mnist-cond" --metrics fid,class_acc
