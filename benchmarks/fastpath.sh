#!/usr/bin/env bash
# Quality with and without the fast path's defaults (bf16 where fast, channels_last, reuse_fake), 3 seeds each, on
# the digits and mnist presets: README "Speed", quality table.
#   bash benchmarks/fastpath.sh MNIST_DIR OUT [SEEDS]
set -euo pipefail
mnist=${1:?MNIST_DIR}; out=${2:?OUT}; seeds=${3:-3}
legacy="legacy:precision=fp32;channels_last=false;reuse_fake=false"
gankit ablate --config digits-dcgan --variant "fast:" --variant "$legacy" --seeds "$seeds" --jobs 1 --threads 1 \
  --eval_metrics fid,pr,dc,recognisable --eval_n 898 --out "$out" --name digits
gankit ablate --config mnist --data_dir "$mnist" --variant "fast:" --variant "$legacy" --seeds "$seeds" --jobs 1 --threads 1 \
  --eval_metrics fid,pr,dc,recognisable --eval_n 5000 --out "$out" --name mnist
