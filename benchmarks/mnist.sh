#!/usr/bin/env bash
# The MNIST benchmark: the mnist (DCGAN) and mnist-cond (conditional DCGAN, projection D) presets over seeds 0..N-1,
# each trained on MNIST's 10k test split (the only split in ../shared/data/mnist, so it is the training data here)
# and scored at the end of training on 5,000 samples with gankit's shipped MNIST classifier, with the real-vs-real
# floor beside every metric. Then README's table rows (benchmarks/runs_table.py).
# Usage: bash benchmarks/mnist.sh [MNIST_DIR] [OUT_DIR] [SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/mnist}
seeds=${3:-3}
jobs=${4:-2}   # runs at a time, one thread each
export OMP_NUM_THREADS=1
# one line per run without its final evaluation (a stopped benchmark starts those again), `jobs` at a time
for preset in mnist mnist-cond; do
  for seed in $(seq 0 $((seeds - 1))); do
    grep -qs '"eval/' "$out/$preset/s$seed/metrics.jsonl" && continue
    echo "$preset $seed"
  done
done | xargs -P "$jobs" -L 1 sh -c '.venv/bin/gankit train --config "$0" --data_dir "'"$data"'" --seed "$1" \
  --out "'"$out"'/$0" --name "s$1" --force --no-progress > /dev/null 2>&1 || echo "failed: $0 seed $1"'
.venv/bin/python benchmarks/runs_table.py "$out"/mnist/s* --label mnist \
  --metrics fid,kid,precision,recall,density,coverage,recognisable,class_kl
.venv/bin/python benchmarks/runs_table.py "$out"/mnist-cond/s* --label mnist-cond --metrics fid,class_acc,recognisable
