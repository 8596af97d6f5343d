#!/usr/bin/env bash
# Time to quality: the mnist preset's recognisable share and FID (with its floor) against training minutes, beside
# pytorch/examples' DCGAN recipe at the same sizes (32x32, widths 64, batch 64, Adam 2e-4 / 0.5, BCE, batch norm,
# transposed convolutions, no EMA, no R1, no lr decay; z 100 as there). Both keep a checkpoint every 1,000 steps; each
# is scored afterwards with `gankit eval --checkpoint STEP`, so the evaluations take no training time, and the
# training minutes are metrics.jsonl's seconds at that step.
# Usage: bash benchmarks/time_to_quality.sh OUT [MNIST_DIR] [THREADS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; data=${2:-../shared/data/mnist}; export OMP_NUM_THREADS=${3:-2}; n=${4:-2000}
G=.venv/bin/gankit
examples="--g_up deconv --z_dim 100 --ema_decay 0 --ema_rampup 0 --r1_gamma 0 --lr_decay_start 1"
for recipe in preset examples; do
  run="$out/$recipe"
  if [ ! -f "$run/checkpoints/step-0008000.pt" ]; then
    extra=""; [ "$recipe" = examples ] && extra=$examples
    # shellcheck disable=SC2086
    $G train --config mnist --data_dir "$data" --seed 0 --ckpt_every 1000 --eval_metrics "" $extra \
      --out "$out" --name "$recipe" --force --no-progress > "$out/$recipe.log" 2>&1
  fi
  for step in 1000 2000 3000 4000 5000 6000 7000 8000; do
    [ -f "$run/eval/step-$(printf %07d $step).json" ] && continue
    $G eval "$run" --checkpoint "$step" --n "$n" --metrics fid,recognisable > /dev/null 2>> "$out/eval.log"
  done
done
.venv/bin/python benchmarks/time_to_quality.py "mnist preset=$out/preset" "pytorch/examples recipe=$out/examples"
