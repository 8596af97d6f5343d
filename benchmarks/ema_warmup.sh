#!/usr/bin/env bash
# The digits preset with and without the EMA warm-up (ema_rampup 0.05 against 0), at the README's Python example's
# length (100 steps) and at the preset's own (1500), seeds 0 and 1, one thread; each run scored by FID and the
# recognisable share of its averaged G. G itself trains bit for bit the same in both (the average does not feed
# back), so any difference is the average's.
#   bash benchmarks/ema_warmup.sh OUT
set -euo pipefail
out=${1:?usage: ema_warmup.sh OUT}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for steps in 100 1500; do
  for seed in 0 1; do
    for rampup in 0 0.05; do
      name=s${steps}-seed${seed}-rampup${rampup}
      gankit train --config digits-dcgan --steps "$steps" --seed "$seed" --ema_rampup "$rampup" --out "$out" \
        --name "$name" --no-progress --log_every 500 > /dev/null 2>&1
      gankit eval "$out/$name" --metrics fid,recognisable 2>/dev/null | grep -E '^\| (fid|recognisable) ' \
        | sed "s/^/$name /"
    done
  done
done
