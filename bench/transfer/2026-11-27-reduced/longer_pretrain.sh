#!/usr/bin/env bash
# The longer-pretrain check of 2026-11-27 (records: longer_pretrain.jsonl). O: output folder; CMP: the reduced
# comparison folder whose plrc-grid-s0 run is evaluated beside it.
set -x
cd "$(dirname "$0")/../../.."
O=${O:-longer-pretrain}; CMP=${CMP:-compare-reduced}
mkdir -p "$O"
export XDG_RUNTIME_DIR=/tmp/xdg
P="npx -y deno@2.9.6 run -A cli.ts"
date
$P pretrain --set preset=cpu-tiny --set method=plrc --set seed=0 --set train.epochs=6 --out $O/plrc6 > $O/plrc6.log 2>&1
date
for c in $O/plrc6/checkpoints/last.safetensors $CMP/runs/plrc-grid-s0/checkpoints/last.safetensors random; do
  for p in linear knn; do
    $P eval --ckpt $c --protocol $p --set preset=cpu-tiny --train 200 --test 100 --json
  done
  $P eval --ckpt $c --protocol detect --set preset=cpu-tiny --train 200 --test 100 --epochs 6 --json
done
date

# then moco and detcon at the same length
for m in moco detcon; do
  $P pretrain --set preset=cpu-tiny --set method=$m --set seed=0 --set train.epochs=6 --out $O/${m}6 > $O/${m}6.log 2>&1
done
for m in moco detcon; do
  c=$O/${m}6/checkpoints/last.safetensors
  for p in linear knn; do
    $P eval --ckpt $c --protocol $p --set preset=cpu-tiny --train 200 --test 100 --json
  done
  $P eval --ckpt $c --protocol detect --set preset=cpu-tiny --train 200 --test 100 --epochs 6 --json
done
date
