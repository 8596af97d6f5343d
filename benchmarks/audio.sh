#!/usr/bin/env bash
# Train each FSDD preset once (seed 0) at one thread, score it at its end with the audio metrics beside FSDD's test
# split, and write 10 of its clips (and their spectrogram sheet) to docs/audio/PRESET/. The runs go to runs/audio/.
#     bash benchmarks/audio.sh [FSDD_DIR] > benchmarks/audio.log 2>&1      (FSDD_DIR: ../shared/data/fsdd)
#     bash benchmarks/audio.sh FSDD_DIR "1 2" [PRESETS]                   (more seeds: runs/audio-seeds/PRESET-sS)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = clips ]; then   # bash benchmarks/audio.sh clips PRESET [RUN]: docs/audio/PRESET/ from RUN
    run=${3:-runs/audio/$2} out=docs/audio/$2                 # (RUN: runs/audio/PRESET unless given)
    if grep -q "^cond: none" "$run/config.yaml"; then
        .venv/bin/gankit sample "$run" --n 10 --seed 0 --out "$out" --force
    else
        for k in 0 1 2 3 4 5 6 7 8 9; do
            .venv/bin/gankit sample "$run" --n 1 --seed "$k" --class "$k" --out "$out" --force
        done
    fi
    .venv/bin/python -c "import sys; from gankit import audio; audio.save_folder_sheet(sys.argv[1], sys.argv[2])" \
        "$out" "$out.png"
    exit 0
fi
FSDD=${1:-../shared/data/fsdd}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
lscpu | grep "Model name"
if [ -n "${2:-}" ]; then   # bash benchmarks/audio.sh FSDD_DIR "1 2" [PRESETS]: more seeds, in runs/audio-seeds/PRESET-sS
    for preset in ${3:-fsdd-specgan-cond fsdd-specgan}; do for seed in $2; do
        echo "== $preset seed $seed ($(date -u +%H:%M:%S))"
        /usr/bin/time -f "$preset seed $seed: %e s wall" .venv/bin/gankit train --config "$preset" --data_dir "$FSDD" \
            --out runs/audio-seeds --name "$preset-s$seed" --seed "$seed" --no-progress
        cat "runs/audio-seeds/$preset-s$seed/eval/"step-*.md
    done; done
    exit 0
fi
for preset in fsdd-wavegan fsdd-specgan fsdd-specgan-cond fsdd-wavegan-cond; do
    echo "== $preset ($(date -u +%H:%M:%S))"
    /usr/bin/time -f "$preset: %e s wall" .venv/bin/gankit train --config "$preset" --data_dir "$FSDD" \
        --out runs/audio --name "$preset" --no-progress
    cat "runs/audio/$preset/eval/"step-*.md
    bash benchmarks/audio.sh clips "$preset"
done
