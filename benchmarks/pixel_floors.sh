#!/bin/bash
# Issue 13 item 3 on a machine with many cores and a GPU: real_anatomy.py's from-scratch row at
# the product's training defaults, trained at pixel floors 2.0 and 1.0 mm and the paper's rule
# (0) at once, on the same phantoms (made once, WORKERS processes). Each floor's table lands in
# ROOT/ra<floor>.log, its numbers in ROOT/ra<floor>/results.json.
#
# Usage: bash benchmarks/pixel_floors.sh ROOT [SEED] [WORKERS]
#   PYTHON (default .venv/bin/python) must import hipseg; LABEL_MAPS (default
#   ../shared/data/hip-labels) holds the 23 real maps; EXTRA adds real_anatomy.py options
#   (EXTRA=--quick checks the wiring in minutes).
set -eu
root=$(realpath -m "${1:?usage: pixel_floors.sh ROOT [SEED] [WORKERS]}")
seed=${2:-0}
workers=${3:-14}
python=$(realpath -s "${PYTHON:-.venv/bin/python}")  # -s: a venv's python is a link
maps=$(realpath "${LABEL_MAPS:-../shared/data/hip-labels}")
cd "$(dirname "$0")"
mkdir -p "$root"
common=(--seed "$seed" --rows no-pretrain-variants --accurate 2 --femur-rotation-deg 10
        --epochs-factor 3 --patience 15 --appearance-fraction 0.5 --label-maps "$maps"
        ${EXTRA:-})
"$python" real_anatomy.py "${common[@]}" --workers "$workers" --min-pixel-mm 2.0 \
  --out "$root/ra2.0" > "$root/ra2.0.log" 2>&1 &
first=$!
until grep -qs "phantoms ready" "$root/ra2.0.log"; do
  sleep 3
  kill -0 "$first" 2>/dev/null || { echo "making the phantoms failed:"; tail -20 "$root/ra2.0.log"; exit 1; }
done
for floor in 1.0 0; do
  mkdir -p "$root/ra$floor" && ln -sfn "$root/ra2.0/data" "$root/ra$floor/data"
  "$python" real_anatomy.py "${common[@]}" --workers 1 --min-pixel-mm "$floor" \
    --out "$root/ra$floor" > "$root/ra$floor.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
for floor in 2.0 1.0 0; do echo "== pixel floor $floor mm"; grep -A3 "^| model" "$root/ra$floor.log" | head -4; done
exit $status
