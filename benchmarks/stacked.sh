#!/usr/bin/env bash
# Stacked MNIST (PacGAN's and VEEGAN's benchmark): the stacked-mnist preset over seeds 0..N-1, scored at the end of
# training by the `modes` metric on 26,000 samples (modes captured of 1,000, KL of the mode histogram to uniform),
# with the same figures for 26,000 real images as the floor.
# Usage: bash benchmarks/stacked.sh [MNIST_DIR] [OUT_DIR] [SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/stacked}
seeds=${3:-3}
jobs=${4:-2}
.venv/bin/gankit ablate --config stacked-mnist --data_dir "$data" --seeds "$seeds" --jobs "$jobs" --threads 1 \
  --out "$out" --name stacked-mnist
.venv/bin/python benchmarks/table.py "$out/stacked-mnist" --metrics modes,reverse_kl --floors --time
