#!/usr/bin/env bash
# D-guided sampling beside plain sampling and the truncation trick, same G, same seeds: for each preset and seed,
# train the preset (skipped when its run has finished), then `gankit eval` it once per sampling option, each record
# in RUN/eval/step-N[-guide][-psiP].json with its cost; benchmarks/guided_table.py makes README's rows.
# Usage: bash benchmarks/guided.sh OUT "PRESETS" "SEEDS" [MNIST_DIR] [N]
#   bash benchmarks/guided.sh runs/guided "grid ring" "0 1 2"
#   bash benchmarks/guided.sh runs/guided "mnist" "0" ../shared/data/mnist 5000
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; presets=$2; seeds=$3; data=${4:-../shared/data/mnist}; n=${5:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
G=.venv/bin/gankit
for preset in $presets; do
  for seed in $seeds; do
    run="$out/$preset/s$seed"
    if ! grep -qs '"eval/' "$run/metrics.jsonl"; then
      /usr/bin/time -f "train $preset seed $seed: %e s" $G train --config "$preset" --data_dir "$data" --seed "$seed" \
        --out "$out/$preset" --name "s$seed" --force --no-progress > "$out/$preset-s$seed.log" 2>&1
    fi
    for variant in "--guide none" "--truncation 0.7" "--guide drs" "--guide mh" "--guide ddls"; do
      # shellcheck disable=SC2086
      $G eval "$run" $variant ${n:+--n "$n"} --force > /dev/null 2>> "$out/eval.log" || echo "failed: $run $variant"
    done
  done
done
