#!/usr/bin/env bash
# One prepared session on the GPU machine (.device/enter.sh sets it up): adapter facts, GPU
# correctness (the kernel, loss, model and gradient tests against their float64 references), GEMM rates,
# and the PLRC step of the `paper` preset beside the PyTorch reference on the same card.
# usage there: source .device/enter.sh && bash tools/gpu_session.sh "$OUT" [batch...]
# Optional stages by environment: ACC_S=<limit> (the paper preset's 256 as 8 x 32 and 4 x 64 micro-batches),
# PRETRAIN_S=<limit> (one gpu-small epoch), COMPARE_S=<limit> with
# COMPARE_SIZE (default full) and COMPARE_ARGS (e.g. "--jobs 6"); SKIP_TESTS=1, SKIP_GEMM=1, SKIP_STEP=1; TESTS,
# TEST_S, STEP_S. The comparison alone: SKIP_TESTS=1 SKIP_GEMM=1 SKIP_STEP=1 COMPARE_S=540 bash tools/gpu_session.sh "$OUT"
# Every stage has its own time limit so that one slow stage cannot take the others' results with it.
set -uo pipefail
out=${1:-results}
shift || true
batches=${*:-16 64}
mkdir -p "$out"
stage() { echo "== $(date +%T) $*"; }
stage info
deno run -A cli.ts info --json >"$out/info.json" 2>&1
head -c 600 "$out/info.json"; echo
[ -n "${SKIP_TESTS:-}" ] || {
stage tests
tests=${TESTS:-tests/gpu tests/losses tests/models tests/ref tests/train/step_gradient_test.ts}
# shellcheck disable=SC2086
DENO_JOBS=8 timeout "${TEST_S:-150}" deno test -A --parallel $tests >"$out/tests.txt" 2>&1
echo "tests rc=$?"; grep -E "^(ok|FAILED)|passed|failed|=> " "$out/tests.txt" | tail -25
}
stage gemm
[ -n "${SKIP_GEMM:-}" ] || timeout 60 deno run -A cli.ts bench gemm --size 1024,4096 --json | tee "$out/gemm.jsonl"
[ -n "${SKIP_STEP:-}" ] && batches=""
for b in $batches; do
  stage "step paper batch $b"
  timeout "${STEP_S:-120}" deno run -A cli.ts bench step --preset paper --batch "$b" --reps 5 --json \
    | grep '^{' | tee "$out/step_b$b.json"
  [ -s "$out/step_b$b.json" ] || continue
  stage "pytorch batch $b"
  timeout 90 python3 tools/torch_reference/plrc_step.py --steps 10 <"$out/step_b$b.json" \
    | tee "$out/torch_b$b.json"
done
if [ -n "${ACC_S:-}" ]; then
  # the paper preset's batch of 256 as micro-batches (train.accumulate): 8 x 32 (the preset) and 4 x 64
  for acc in 8 4; do
    stage "step paper, batch 256 as $acc micro-batches (limit ${ACC_S} s)"
    timeout "$ACC_S" deno run -A cli.ts bench step --preset paper --set train.accumulate=$acc --reps 3 --json \
      | grep '^{' | tee "$out/step_paper_acc$acc.json"
  done
fi
if [ -n "${PRETRAIN_S:-}" ]; then
  stage "pretrain gpu-small, one epoch (limit ${PRETRAIN_S} s)"
  timeout "$PRETRAIN_S" deno run -A cli.ts pretrain --out "$out/run" --set preset=gpu-small --set train.epochs=1 \
    --set log.interval=16 2>&1 | tail -15
  cp "$out/run/metrics.jsonl" "$out/pretrain_metrics.jsonl" 2>/dev/null
  rm -rf "$out/run"
fi
if [ -n "${COMPARE_S:-}" ]; then
  # the comparison (issue 6's full size by default). Each run is evaluated as soon as it is done, so a
  # comparison cut off by the limit still has whole results: `--report` tables them. Checkpoints are dropped
  # afterwards: they would not come back.
  stage "compare --size ${COMPARE_SIZE:-full} ${COMPARE_ARGS:-} (limit ${COMPARE_S} s)"
  # GPU use and CPU load every 20 s, for choosing --jobs
  (while sleep 20; do
    echo "$(date +%T) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)" \
      "$(cut -d' ' -f1-3 /proc/loadavg)"
  done) >"$out/load.txt" 2>&1 &
  sampler=$!
  # shellcheck disable=SC2086
  timeout -k 10 "$COMPARE_S" deno run -A cli.ts compare --size "${COMPARE_SIZE:-full}" --out "$out/compare" \
    ${COMPARE_ARGS:-} >"$out/compare.txt" 2>&1
  rc=$?
  kill "$sampler" 2>/dev/null
  echo "compare rc=$rc"
  grep -v "^\s*$" "$out/compare.txt" | tail -80
  if [ "$rc" != 0 ]; then
    # the runs and evaluations it had started are its children: stop them, then table what finished
    pkill -f "cli.ts (pretrain|eval) " 2>/dev/null
    sleep 2
    stage "compare --report (what finished)"
    # shellcheck disable=SC2086
    timeout 60 deno run -A cli.ts compare --size "${COMPARE_SIZE:-full}" --out "$out/compare" ${COMPARE_ARGS:-} \
      --report 2>&1 | tail -40
  fi
  rm -rf "$out"/compare/runs/*/checkpoints "$out"/compare/scene-cache
  # did plrc's distillation term survive at this size? (it collapses at cpu-tiny: README)
  grep -H "distillation" "$out"/compare/runs/*/train.log | head -20
  echo "GPU util, memory; load average (1, 5, 15 min) on $(nproc) cores:"; cat "$out/load.txt"
  # at most 8 files come back from the device: the runs' metrics, logs and configs and the evaluations travel as
  # one archive (unpack it and run `plrc compare --size ... --out compare --report` to table them again)
  (cd "$out" && tar czf compare-files.tgz compare/runs compare/evals $([ -d compare/logs ] && echo compare/logs) &&
    rm -rf compare/runs compare/evals compare/logs)
  ls -la "$out" "$out/compare"
fi
stage done
