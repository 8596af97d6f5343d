#!/usr/bin/env bash
# Missing labels: the mnist-ssl preset (semi-supervised GAN, Salimans et al. 2016) over seeds 0..N-1, one run at a
# time with one thread. Each run trains on 9,000 MNIST images of which 10 per class keep their labels (chosen by
# the seed), scores its classifier on the 1,000 held-out images, and trains a supervised CNN on the same 100 labels
# beside it (results.json). The table: python benchmarks/apps_table.py ssl OUT_DIR
# Usage: bash benchmarks/ssl.sh [MNIST_DIR] [OUT_DIR] [SEEDS] [TRAIN_FLAGS...]
#   TRAIN_FLAGS go to every run, e.g. --unlabeled_weight 0 (D ignores G: the mean teacher alone) or
#   --ssl_consistency 0 (the semi-supervised GAN alone)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/apps}
seeds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
for seed in $(seq 0 $((seeds - 1))); do
  start=$(date +%s)
  OMP_NUM_THREADS=1 .venv/bin/gankit train --config mnist-ssl --data_dir "$data" --seed "$seed" --out "$out" \
    --name "ssl-s$seed" --no-progress "$@"
  echo "ssl seed $seed: $(( $(date +%s) - start )) s, fresh process to the end of the baseline"
done
.venv/bin/python benchmarks/apps_table.py ssl "$out"
