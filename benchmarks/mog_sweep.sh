#!/usr/bin/env bash
# Hyperparameter sweep behind the ring and grid presets: one setting changed at a time from the preset, 2 seeds,
# both mixtures, many runs in parallel. Meant for a machine with many cores or a GPU (pass DEVICE=cuda); the
# presets it selects are then timed on the 2-core CPU machine by benchmarks/mog.sh.
# Usage: DEVICE=cuda JOBS=12 bash benchmarks/mog_sweep.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/sweep}
device=${DEVICE:-cpu}
jobs=${JOBS:-2}
steps=${STEPS:-12000}
gankit=${GANKIT:-.venv/bin/gankit}
limit=${LIMIT:-0}   # seconds per mixture; 0 = no limit. `gankit ablate --summarise` tabulates what finished.
variants=(
  "base:" "g_lr3e-4:g_lr=3e-4" "g3e-4_d2e-3:g_lr=3e-4;d_lr=2e-3" "batch512:batch_size=512" "ema0.999:ema_decay=0.999"
  "ema0:ema_decay=0" "pack2:pack=2" "pack8:pack=8" "mbstd:mbstd=true" "hinge:loss=hinge" "ls:loss=ls"
  "r1_0.1:r1_gamma=0.1" "g_width800:g_width=800" "d_layers4:d_layers=4" "decay0.5:lr_decay_start=0.5"
  "g_norm_batch:g_norm=batch" "sphere_z3:prior=sphere;z_dim=3" "steps2x:steps=$((2 * steps))" "g_lr3e-4_steps2x:g_lr=3e-4;steps=$((2 * steps))"
)
args=()
for v in "${variants[@]}"; do args+=(--variant "$v"); done
for preset in ring grid; do
  timeout "$limit" $gankit ablate --config "$preset" --steps "$steps" --sample_every "$steps" --device "$device" --seeds 2 \
    --jobs "$jobs" --out "$out" --name "sweep-$preset" "${args[@]}" > "$out-$preset.log" 2>&1 &
done
wait
