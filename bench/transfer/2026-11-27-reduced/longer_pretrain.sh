#!/usr/bin/env bash
# The longer-pretrain check of 2026-11-27 (records: longer_pretrain.jsonl). O: output folder; CMP: the reduced
# comparison folder whose plrc-grid-s0 run is evaluated beside it.
set -x
cd "$(dirname "$0")/../../.."
O=${O:-longer-pretrain}; CMP=${CMP:-compare-reduced}
mkdir -p "$O"
export XDG_RUNTIME_DIR=/tmp/xdg
P="npx -y deno@2.9.6 run -A cli.ts"
pretrain() { # METHOD: 768 steps (6 epochs of cpu-tiny), seed 0
  $P pretrain --set preset=cpu-tiny --set method=$1 --set seed=0 --set train.epochs=6 --out $O/${1}6 > $O/${1}6.log 2>&1
}
evaluate() { # CKPT: linear, knn and detect, one JSON line each
  for p in linear knn; do $P eval --ckpt $1 --protocol $p --set preset=cpu-tiny --train 200 --test 100 --json; done
  $P eval --ckpt $1 --protocol detect --set preset=cpu-tiny --train 200 --test 100 --epochs 6 --json
}
for m in plrc moco detcon; do pretrain $m; done
for c in $O/plrc6/checkpoints/last.safetensors $CMP/runs/plrc-grid-s0/checkpoints/last.safetensors random \
  $O/moco6/checkpoints/last.safetensors $O/detcon6/checkpoints/last.safetensors; do
  evaluate $c
done
