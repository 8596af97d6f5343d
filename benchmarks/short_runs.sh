#!/usr/bin/env bash
# Short runs of every task (digits, mnist, mnist-ssl, mnist-sr: 30-60 steps, checkpoints midway and at the end) with
# the gankit source in SRC, into OUT: what benchmarks/compare_runs.py compares bit for bit between two versions.
#   git worktree add /tmp/before <commit>
#   bash benchmarks/short_runs.sh /tmp/before/src /tmp/a ../shared/data/mnist
#   bash benchmarks/short_runs.sh src /tmp/b ../shared/data/mnist
#   .venv/bin/python benchmarks/compare_runs.py /tmp/a /tmp/b
# Usage: bash benchmarks/short_runs.sh SRC OUT [MNIST_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "$1" && pwd); out=$2; data=$(cd "${3:-$root/../shared/data/mnist}" && pwd)
export PYTHONPATH=$src OMP_NUM_THREADS=1
gankit() { "$root/.venv/bin/python" -m gankit "$@"; }
common=(--log_every 10 --sample_every 30 --out "$out" --no-progress)
gankit train --config digits --steps 60 --ckpt_every 30 --name gan "${common[@]}"
gankit train --config mnist --data_dir "$data" --steps 30 --ckpt_every 15 --eval_metrics '' --name mnist "${common[@]}"
gankit train --config mnist-ssl --data_dir "$data" --steps 30 --eval_every 15 --ckpt_every 15 --name ssl "${common[@]}"
gankit train --config mnist-sr --data_dir "$data" --steps 30 --eval_every 15 --ckpt_every 15 --name sr "${common[@]}"
