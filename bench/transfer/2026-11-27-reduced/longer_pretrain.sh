set -x
cd /work/main
export XDG_RUNTIME_DIR=/tmp/xdg
P="npx -y deno@2.9.6 run -A cli.ts"
date
$P pretrain --set preset=cpu-tiny --set method=plrc --set seed=0 --set train.epochs=6 --out /tmp/inv/plrc6 > /tmp/inv/plrc6.log 2>&1
date
for c in /tmp/inv/plrc6/checkpoints/last.safetensors /tmp/compare-reduced/runs/plrc-grid-s0/checkpoints/last.safetensors random; do
  for p in linear knn; do
    $P eval --ckpt $c --protocol $p --set preset=cpu-tiny --train 200 --test 100 --json
  done
  $P eval --ckpt $c --protocol detect --set preset=cpu-tiny --train 200 --test 100 --epochs 6 --json
done
date
