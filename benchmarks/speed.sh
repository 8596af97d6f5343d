#!/usr/bin/env bash
# README "Speed": gankit's step beside pytorch/examples' DCGAN loop (64 px, z 100, 64 filters, batch 64), in the
# same process, alternating rounds. On a CPU: fp32, then the precision `auto` picks, then the mnist preset's model.
# On a CUDA machine (bash benchmarks/speed.sh cuda): batch 64, 256 and 1024, eager and compiled.
#   bash benchmarks/speed.sh [cpu|cuda] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cpu}; out=${2:-runs/speed}
mkdir -p "$out"
g=.venv/bin/gankit
common=(--data fake --n_points 4096 --img_size 64 --reference --device "$device")
if [ "$device" = cpu ]; then
  $g bench "${common[@]}" --precision fp32 --rounds 5 --timed-steps 10 --json "$out/cpu-fp32.json"
  $g bench "${common[@]}" --precision auto --rounds 5 --timed-steps 10 --json "$out/cpu-auto.json"
  $g bench --config mnist --data fake --n_points 4096 --channels 1 --reference --rounds 5 --timed-steps 50 \
    --json "$out/cpu-mnist-preset.json"
else
  for b in 64 256 1024; do
    $g bench "${common[@]}" --batch_size $b --precision fp32 --json "$out/cuda-fp32-b$b.json"
    $g bench "${common[@]}" --batch_size $b --precision bf16 --json "$out/cuda-bf16-b$b.json"
    $g bench "${common[@]}" --batch_size $b --precision bf16 --compile reduce-overhead --warmup 20 \
      --json "$out/cuda-bf16-graphs-b$b.json"
  done
fi
