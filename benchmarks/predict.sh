#!/usr/bin/env bash
# Next-frame prediction: the smmnist-predict and mmnist-predict presets (a conditional GAN: adversarial loss plus
# l1_weight times the L1 term, of the closest of variety_k futures) and the same networks with adv_weight 0 and
# variety_k 1 (the regression baseline), for each seed of SEEDS, at 1 thread, scored on the held-out sequences
# (digits training never saw): PSNR and SSIM (mean and best of 8), sharpness against the real frames', diversity of
# the 8 futures, beside copying the last frame. TRIED=1 adds, on seed 0, the variants docs/predict.md reports as
# tried. Then the table (mean ± standard deviation over the seeds; benchmarks/predict_table.py) and the GIFs of
# docs/predict/: context and 4 futures of held-out sequences, from the stochastic GAN run of seed 0.
# Usage: [SEEDS="0 1 2"] [TRIED=1] [ONLY=smmnist] bash benchmarks/predict.sh [MNIST_DIR] [OUT_DIR]
#   (log: benchmarks/predict.log; a run whose results.json exists is not trained again)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/predict}
seeds=${SEEDS:-0 1 2}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
variants=()
for seed in $seeds; do
  variants+=("$seed smmnist-predict smmnist-gan" "$seed smmnist-predict smmnist-regression --adv_weight 0 --variety_k 1"
             "$seed mmnist-predict mmnist-gan" "$seed mmnist-predict mmnist-regression --adv_weight 0 --variety_k 1")
done
if [ "${TRIED:-0}" = 1 ]; then                 # the recipes docs/predict.md compares, seed 0
  variants+=("0 smmnist-predict smmnist-l1-adv1 --variety_k 1 --adv_weight 1"
             "0 smmnist-predict smmnist-v4-adv1 --variety_k 4 --adv_weight 1")
fi
for variant in "${variants[@]}"; do
  set -- $variant
  seed=$1; preset=$2; name=$3-s$1; shift 3
  case "$name" in ${ONLY:-}*) ;; *) continue ;; esac
  if [ -f "$out/$name/results.json" ]; then echo "$name: done before"; continue; fi
  start=$(date +%s)
  .venv/bin/gankit train --config "$preset" --data_dir "$data" --out "$out" --name "$name" --no-progress \
    --device cpu --seed "$seed" "$@"
  echo "$name: $(( $(date +%s) - start )) s wall"
done
.venv/bin/python benchmarks/predict_table.py "$out"
if [ -f "$out/smmnist-gan-s0/results.json" ]; then
  rm -rf "$out/gifs"
  .venv/bin/gankit predict "$out/smmnist-gan-s0" --context heldout --futures 4 --n 4 --out "$out/gifs"
  mkdir -p docs/predict
  cp "$out"/gifs/seq-000[0-3].gif docs/predict/
  echo "docs/predict/: $(ls docs/predict)"
fi
