#!/usr/bin/env bash
# `make run`'s preset (digits: an MLP GAN at the digits' own 8x8) over seeds, and its time to quality beside two
# references trained on the same digits: pytorch/examples' DCGAN recipe at 32x32 (as the digits preset was: widths
# 32, batch 64, Adam 2e-4 / 0.5, batch norm, transposed convolutions, no EMA, no R1) and a plain MLP GAN at 8x8 (2
# hidden layers of 256, PyTorch's init, Adam 2e-4 / 0.5, batch 64, R1 0.5, EMA as the preset). Each keeps
# checkpoints as it goes and is scored afterwards with `gankit eval --checkpoint STEP`, so evaluations take no training
# time; the training minutes are metrics.jsonl's seconds at that step.
# Usage: bash benchmarks/digits.sh OUT [SEEDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; seeds=${2:-3}; export OMP_NUM_THREADS=${3:-2}
G=.venv/bin/gankit
mkdir -p "$out"
for seed in $(seq 0 $((seeds - 1))); do    # the preset as `make run` trains it, scored at its end
  [ -f "$out/seed$seed/checkpoints/latest.pt" ] || \
    $G train --config digits --seed "$seed" --out "$out" --name "seed$seed" --force --no-progress > "$out/seed$seed.log" 2>&1
  grep '^evaluation' "$out/seed$seed.log" | sed "s/^/seed $seed /"
done
examples="--model dcgan --img_size 32 --g_width 32 --d_width 32 --batch_size 64 --g_norm batch --d_norm batch \
  --g_init default --z_dim 100 --g_lr 2e-4 --d_lr 2e-4 --beta1 0.5 --beta2 0.999 --r1_gamma 0 --ema_decay 0 \
  --ema_rampup 0 --steps 4000 --ckpt_every 500"
plain="--g_width 256 --d_width 256 --g_layers 2 --d_layers 2 --g_init default --batch_size 64 --g_lr 2e-4 \
  --d_lr 2e-4 --beta1 0.5 --beta2 0.999 --r1_gamma 0.5 --steps 30000 --ckpt_every 2500"
for recipe in preset examples plain; do
  case $recipe in preset) extra="--ckpt_every 1000";; examples) extra=$examples;; plain) extra=$plain;; esac
  run="$out/ttq-$recipe"
  if [ ! -f "$run/checkpoints/latest.pt" ]; then
    # shellcheck disable=SC2086
    $G train --config digits --seed 0 --eval_metrics "" $extra --out "$out" --name "ttq-$recipe" --force \
      --no-progress > "$out/ttq-$recipe.log" 2>&1
  fi
  for ckpt in "$run"/checkpoints/step-*.pt; do
    step=$(basename "$ckpt" .pt); step=$((10#${step#step-}))
    [ -f "$run/eval/step-$(printf %07d "$step").json" ] && continue
    $G eval "$run" --checkpoint "$step" --metrics fid,pr,recognisable > /dev/null 2>> "$out/eval.log"
  done
done
.venv/bin/python benchmarks/time_to_quality.py --title "digits" --png docs/img/time_to_quality_digits.png \
  "digits preset (MLP, 8 px)=$out/ttq-preset" "pytorch/examples DCGAN (32 px)=$out/ttq-examples" \
  "plain MLP (8 px)=$out/ttq-plain"
