#!/usr/bin/env bash
# The mixture-of-Gaussians benchmark (PacGAN's protocol): the ring and grid presets over 10 seeds, no tuning per
# seed. Each seed is a plain `gankit train --config ring|grid` run; the table gives mean and standard error.
# Usage: bash benchmarks/mog.sh [OUT_DIR] [SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/bench}
seeds=${2:-10}
jobs=${3:-1}   # 1 job = each run alone on the machine, so its time is the time of one run on 2 cores
for preset in ring grid; do
  .venv/bin/gankit ablate --config "$preset" --seeds "$seeds" --jobs "$jobs" --out "$out" --name "mog-$preset"
done
