#!/usr/bin/env bash
# The survey's tricks (and the modern ones), one at a time against a base, on the ring, the grid and the embedded
# digits. Runs are shorter than the presets; README's table: ring and grid with 2 seeds at 4,000 steps (about 45
# minutes of 2 CPU cores), digits with 3 seeds (about 5 minutes on one H100, 12 jobs).
# Usage: bash benchmarks/tricks.sh [OUT_DIR] [SEEDS] [PARTS] [JOBS] [DEVICE] [STEPS_2D]
#   PARTS: any of ring,grid,digits (default all three); JOBS parallel runs (2 = one per core here);
#   DEVICE: auto, cpu or cuda; STEPS_2D: training steps of the ring and grid rows (6000).
# Then: python benchmarks/tricks_table.py OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/tricks}
seeds=${2:-3}
parts=${3:-ring,grid,digits}
jobs=${4:-2}
device=${5:-auto}
steps2d=${6:-6000}
g=${GANKIT:-.venv/bin/gankit}
has() { [[ ",$parts," == *",$1,"* ]]; }

common=(
  "base:" "d_steps=2:d_steps=2" "mixed batches:d_batching=mixed"
  "virtual batch norm:norm=virtual_batch"
  "uniform prior:prior=uniform" "sphere prior:prior=sphere"
  "label smoothing 0.9:label_smooth=0.9" "feature matching:feature_matching=true"
  "minibatch discrimination:mbdisc=8" "minibatch stddev:mbstd=true"
  "loss minimax:loss=minimax" "loss ls:loss=ls" "loss hinge:loss=hinge" "loss wgan-gp:loss=wgan-gp"
  "R1 0.1:r1_gamma=0.1" "spectral norm D:d_norm=spectral" "no EMA:ema_decay=0"
)

args=()
for v in "${common[@]}" "batch norm:norm=batch" "D relu:d_act=relu" "instance noise 0.05:inst_noise=0.05" "no packing:pack=1" \
         "equal lr:d_lr=1e-4"; do args+=(--variant "$v"); done
# ring and grid: the presets at STEPS_2D steps (mbstd off in the grid's base, so that row measures it)
for preset in ring grid; do
  has $preset || continue
  $g ablate --config $preset --mbstd false --steps "$steps2d" --eval_every 0 --sample_every "$steps2d" \
    --seeds "$seeds" --jobs "$jobs" --device "$device" --out "$out" --name tricks-$preset "${args[@]}"
done

# digits: DCGAN at 16x16, FID in the digit classifier's features. The sparse-gradient experiment of the survey:
# "ReLU -> LeakyReLU, MaxPool -> AvgPool or strided conv, Unpooling -> Deconvolution", one change at a time.
args=()
for v in "${common[@]}" "no norm:norm=none" "layer norm:norm=layer" "TTUR d_lr 4e-4:d_lr=4e-4" \
         "instance noise 0.1:inst_noise=0.1" "DiffAugment:diffaug=color,translation,cutout" \
         "sparse (D relu, maxpool, unpool):d_act=relu;d_down=maxpool;g_up=unpool" \
         "sparse + LeakyReLU:d_act=leaky_relu;d_down=maxpool;g_up=unpool" \
         "sparse + avgpool:d_act=relu;d_down=avgpool;g_up=unpool" \
         "sparse + strided:d_act=relu;d_down=strided;g_up=unpool" \
         "sparse + deconv:d_act=relu;d_down=maxpool;g_up=deconv"; do args+=(--variant "$v"); done
has digits || exit 0
$g ablate --config digits-dcgan --img_size 16 --steps 1500 --ema_decay 0.995 --eval_metrics fid,pr --eval_n 2000 \
  --sample_every 1500 --ckpt_every 0 --seeds "$seeds" --jobs "$jobs" --device "$device" --out "$out" --name tricks-digits "${args[@]}"
