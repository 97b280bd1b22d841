import assert from "node:assert/strict";
import { readSafetensors, type StDType, toFloat32, toInt32 } from "../../src/io/safetensors.ts";

const FIXTURE = new URL("../fixtures/foundation.safetensors", import.meta.url)
  .pathname;

/** name -> [dtype, shape] of every tensor tools/make_fixtures.py writes. */
const EXPECTED: Record<string, [StDType, number[]]> = {
  "ce.logits": ["F32", [16, 10]],
  "ce.target": ["I64", [16]],
  "ce.loss": ["F32", []],
  "ce.grad": ["F32", [16, 10]],
  "ce_soft.logits": ["F32", [8, 12]],
  "ce_soft.target": ["F32", [8, 12]],
  "ce_soft.loss": ["F32", []],
  "ce_soft.grad": ["F32", [8, 12]],
  "l2.x": ["F32", [12, 32]],
  "l2.dy": ["F32", [12, 32]],
  "l2.y": ["F32", [12, 32]],
  "l2.dx": ["F32", [12, 32]],
  "softmax.x": ["F32", [9, 17]],
  "softmax.dy": ["F32", [9, 17]],
  "softmax.y": ["F32", [9, 17]],
  "softmax.dx": ["F32", [9, 17]],
  "log_softmax.x": ["F32", [9, 17]],
  "log_softmax.dy": ["F32", [9, 17]],
  "log_softmax.y": ["F32", [9, 17]],
  "log_softmax.dx": ["F32", [9, 17]],
};

/** Row-wise log-softmax in float64. */
function logSoftmaxRow(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  return Array.from(row, (v) => v - lse);
}

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
}

const { tensors, metadata } = await readSafetensors(FIXTURE);
const get = (name: string) => {
  const t = tensors.get(name);
  assert.ok(t, `missing ${name}`);
  return t;
};

Deno.test("fixture: names, dtypes, shapes and metadata", () => {
  assert.deepEqual([...tensors.keys()].sort(), Object.keys(EXPECTED).sort());
  for (const [name, [dtype, shape]] of Object.entries(EXPECTED)) {
    const t = get(name);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, shape, name);
  }
  assert.equal(metadata.generator, "tools/make_fixtures.py");
  assert.match(metadata.torch, /^\d+\.\d+/);
});

Deno.test("fixture: ce.loss and ce.grad match a float64 recomputation", () => {
  const logits = toFloat32(get("ce.logits"));
  const target = toInt32(get("ce.target"));
  const [n, c] = get("ce.logits").shape;
  let loss = 0;
  const grad = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    assert.ok(target[i] >= 0 && target[i] < c, `target ${target[i]}`);
    const ls = logSoftmaxRow(logits.subarray(i * c, (i + 1) * c));
    loss -= ls[target[i]] / n;
    for (let j = 0; j < c; j++) {
      grad[i * c + j] = (Math.exp(ls[j]) - (j === target[i] ? 1 : 0)) / n;
    }
  }
  const stored = toFloat32(get("ce.loss"))[0];
  assert.ok(relErr(stored, loss) < 1e-6, `loss ${stored} vs ${loss}`);
  const storedGrad = toFloat32(get("ce.grad"));
  for (let k = 0; k < n * c; k++) {
    assert.ok(
      Math.abs(storedGrad[k] - grad[k]) < 1e-7,
      `grad[${k}] ${storedGrad[k]} vs ${grad[k]}`,
    );
  }
});

Deno.test("fixture: ce_soft.loss matches a float64 recomputation", () => {
  const logits = toFloat32(get("ce_soft.logits"));
  const target = toFloat32(get("ce_soft.target"));
  const [n, c] = get("ce_soft.logits").shape;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const ls = logSoftmaxRow(logits.subarray(i * c, (i + 1) * c));
    let rowSum = 0;
    for (let j = 0; j < c; j++) {
      loss -= (target[i * c + j] * ls[j]) / n;
      rowSum += target[i * c + j];
    }
    assert.ok(Math.abs(rowSum - 1) < 1e-5, `row ${i} sums to ${rowSum}`);
  }
  const stored = toFloat32(get("ce_soft.loss"))[0];
  assert.ok(relErr(stored, loss) < 1e-6, `loss ${stored} vs ${loss}`);
});
