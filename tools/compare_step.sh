#!/usr/bin/env bash
# Runs plrc's training step and the PyTorch reference at the same sizes and prints both and the ratio.
# usage: bash tools/compare_step.sh [plrc bench step options, e.g. --preset paper --set train.batchSize=64]
# Needs Debian's PyTorch on a CPU machine (/usr/bin/python3) or PyTorch with CUDA on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
[ -x "$py" ] || py=python3
deno_cmd=${DENO:-deno}
command -v "$deno_cmd" >/dev/null || deno_cmd="npx -y deno@2.9.6"
plrc=$($deno_cmd run -A cli.ts bench step --json --reps 5 "$@" | grep '^{' | tail -1)
echo "$plrc"
echo "$plrc" | "$py" tools/torch_reference/plrc_step.py --steps 5 --threads "${THREADS:-2}"
