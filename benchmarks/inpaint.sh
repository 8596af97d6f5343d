#!/usr/bin/env bash
# Missing data: the mnist preset (DCGAN, 32 px) trained with the 1,000 held-out images kept out (--holdout 1000),
# then `gankit inpaint` on those images with the centre square of half the side missing (16 x 16 of 32 px, which
# is the centre 14 x 14 of the 28 px originals): class accuracy by gankit's MNIST classifier and PSNR on the hole,
# beside the masked input, a mean fill and a nearest-training-image fill. Then the other masks.
# Usage: bash benchmarks/inpaint.sh [MNIST_DIR] [OUT_DIR] [MASKS] [INPAINT_FLAGS...]
#   MASKS: "center random half" by default; INPAINT_FLAGS go to every `gankit inpaint` (e.g. --steps 100)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
out=${2:-runs/apps}
masks=${3:-center random half}
shift $(( $# < 3 ? $# : 3 ))
g=.venv/bin/gankit
if [ ! -d "$out/inpaint-g" ]; then
  start=$(date +%s)
  OMP_NUM_THREADS=1 $g train --config mnist --data_dir "$data" --holdout 1000 --eval_metrics "" --out "$out" \
    --name inpaint-g --no-progress
  echo "generator: $(( $(date +%s) - start )) s"
fi
for mask in $masks; do
  start=$(date +%s)
  OMP_NUM_THREADS=1 $g inpaint "$out/inpaint-g" --images heldout --mask "$mask" --out "$out/inpaint-$mask" "$@"
  echo "inpaint $mask: $(( $(date +%s) - start )) s"
done
.venv/bin/python benchmarks/apps_table.py inpaint "$out"
