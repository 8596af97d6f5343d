#!/usr/bin/env bash
# The mixture-of-Gaussians benchmark (PacGAN's protocol): the ring and grid presets over 10 seeds, no tuning per
# seed. Each seed is a plain `gankit train --config ring|grid` run; the table gives mean and standard error.
# Usage: bash benchmarks/mog.sh [OUT_DIR] [SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/bench}
seeds=${2:-10}
jobs=${3:-2}   # 2 jobs of 1 thread each use 2 cores best; time one run alone for its wall-clock figure
for preset in ring grid; do
  .venv/bin/gankit ablate --config "$preset" --seeds "$seeds" --jobs "$jobs" --out "$out" --name "mog-$preset"
done
