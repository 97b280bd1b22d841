/**
 * Every backward reference is checked against central finite differences of its forward reference, in
 * float64: L(x) = Σ f(x) ⊙ w for a random upstream gradient w, dL/dx from the backward reference.
 */
import assert from "node:assert/strict";
import { elementwiseRef as ew } from "../../src/kernels/elementwise.ts";
import { reduceAxisBackwardRef, reduceAxisRef } from "../../src/kernels/reduce.ts";
import { rowsRef as rows } from "../../src/kernels/rows.ts";
import { transposeRef } from "../../src/kernels/transpose.ts";
import { convDgradRef, convForwardRef, convOutSize, convWgradRef } from "../../src/kernels/gemm.ts";
import { bnBackwardRef, bnForwardRef } from "../../src/kernels/batchnorm.ts";
import { maxPoolBackwardRef, maxPoolRef, poolOutSize } from "../../src/kernels/pool.ts";
import { fdError, freshSeed, Rng } from "../util.ts";

const dot = (a: ArrayLike<number>, w: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * w[i];
  return s;
};

function vec(rng: Rng, n: number, std = 1): Float64Array {
  return Float64Array.from({ length: n }, () => rng.normal() * std);
}

/** Runs one finite-difference check; `tol` is on the relative error. */
function check(
  name: string,
  build: (rng: Rng) => { x: Float64Array; loss: (x: Float64Array) => number; grad: ArrayLike<number> },
  tol = 1e-6,
) {
  Deno.test(`finite differences agree with the ${name} backward reference`, () => {
    const seed = freshSeed();
    const { x, loss, grad } = build(new Rng(seed));
    const err = fdError(loss, x, grad);
    assert.ok(err < tol, `${name}: relative error ${err} ≥ ${tol} (seed ${seed})`);
  });
}

const R = 5, C = 7;

check("relu", (rng) => {
  // keep away from the kink at 0, where the derivative is undefined
  const x = vec(rng, 40).map((v) => (Math.abs(v) < 1e-3 ? v + 0.1 : v));
  const w = vec(rng, 40);
  return { x, loss: (x) => dot(ew.relu(x), w), grad: ew.reluBackward(x, w) };
});

check("mul (both inputs)", (rng) => {
  const a = vec(rng, 20), b = vec(rng, 20), w = vec(rng, 20);
  const x = new Float64Array([...a, ...b]);
  const loss = (x: Float64Array) => dot(ew.mul(x.subarray(0, 20), x.subarray(20)), w);
  return { x, loss, grad: [...ew.mul(w, b), ...ew.mul(w, a)] };
});

check("add, scale and axpy", (rng) => {
  const n = 12, alpha = rng.normal(), w = vec(rng, n);
  const x = vec(rng, 3 * n);
  const loss = (x: Float64Array) => {
    const a = x.subarray(0, n), b = x.subarray(n, 2 * n), y = x.subarray(2 * n);
    return dot(ew.axpy(alpha, ew.scale(ew.add(a, b), 2), y), w);
  };
  const ga = ew.scale(w, 2 * alpha);
  return { x, loss, grad: [...ga, ...ga, ...w] };
});

for (const kind of ["sum", "mean"] as const) {
  check(`reduce ${kind}`, (rng) => {
    const shape = [3, 4, 5], axis = 1;
    const x = vec(rng, 60), w = vec(rng, 15);
    return {
      x,
      loss: (x) => dot(reduceAxisRef(x, shape, axis, kind), w),
      grad: reduceAxisBackwardRef(w, shape, axis, kind),
    };
  });
}

check("transpose", (rng) => {
  const x = vec(rng, 2 * 3 * 4), w = vec(rng, 24);
  return { x, loss: (x) => dot(transposeRef(x, 2, 3, 4), w), grad: transposeRef(w, 2, 4, 3) };
});

check("softmax", (rng) => {
  const x = vec(rng, R * C, 2), w = vec(rng, R * C);
  return { x, loss: (x) => dot(rows.softmax(x, R, C), w), grad: rows.softmaxBackward(rows.softmax(x, R, C), w, R, C) };
});

check("log_softmax", (rng) => {
  const x = vec(rng, R * C, 2), w = vec(rng, R * C);
  return {
    x,
    loss: (x) => dot(rows.logSoftmax(x, R, C), w),
    grad: rows.logSoftmaxBackward(rows.logSoftmax(x, R, C), w, R, C),
  };
});

check("l2_normalize", (rng) => {
  const x = vec(rng, R * C), w = vec(rng, R * C);
  const { y, norm } = rows.l2Normalize(x, R, C);
  return { x, loss: (x) => dot(rows.l2Normalize(x, R, C).y, w), grad: rows.l2NormalizeBackward(y, norm, w, R, C) };
});

check("cross_entropy (class targets)", (rng) => {
  const x = vec(rng, R * C, 2), w = vec(rng, R);
  const t = Array.from({ length: R }, () => rng.int(C));
  return {
    x,
    loss: (x) => dot(rows.crossEntropy(x, t, R, C).loss, w),
    grad: rows.crossEntropyBackward(x, t, w, R, C),
  };
});

check("cross_entropy (soft targets)", (rng) => {
  const x = vec(rng, R * C, 2), w = vec(rng, R);
  const t = Array.from({ length: R * C }, () => rng.next());
  return {
    x,
    loss: (x) => dot(rows.softCrossEntropy(x, t, R, C).loss, w),
    grad: rows.softCrossEntropyBackward(x, t, w, R, C),
  };
});

// ---- layers of the ResNet engine ----

check("conv2d (input and weight, 3×3 stride 2 pad 1)", (rng) => {
  const g = { nb: 2, ih: 5, iw: 4, cin: 3, cout: 2, kh: 3, kw: 3, stride: 2, pad: 1 };
  const [oh, ow] = convOutSize(g);
  const nx = 2 * 5 * 4 * 3, nw = 9 * 3 * 2;
  const x = vec(rng, nx + nw), w = vec(rng, 2 * oh * ow * 2);
  const loss = (v: Float64Array) => dot(convForwardRef(v.subarray(0, nx), v.subarray(nx), g), w);
  const grad = [...convDgradRef(w, x.subarray(nx), g), ...convWgradRef(x.subarray(0, nx), w, g)];
  return { x, loss, grad };
});

check("batch norm in 2 groups (through ReLU and residual)", (rng) => {
  const s = { rows: 8, c: 3, groups: 2, eps: 1e-5 };
  const n = 24, gamma = vec(rng, 3), beta = vec(rng, 3), res = vec(rng, n), w = vec(rng, n);
  const x = vec(rng, n, 2);
  const zeros = new Float64Array(3), ones = new Float64Array(3).fill(1);
  const fwd = (v: Float64Array) => bnForwardRef(v, gamma, beta, zeros, ones, s, { relu: true, residual: res }).y;
  const y = fwd(x);
  return { x, loss: (v) => dot(fwd(v), w), grad: bnBackwardRef(x, y, w, gamma, s, true).dx };
}, 1e-5);

check("batch norm γ and β", (rng) => {
  const s = { rows: 6, c: 2, groups: 1, eps: 1e-5 };
  const xv = vec(rng, 12), w = vec(rng, 12), zeros = new Float64Array(2), ones = new Float64Array(2).fill(1);
  const x = vec(rng, 4); // [γ0, γ1, β0, β1]
  const loss = (v: Float64Array) => dot(bnForwardRef(xv, v.subarray(0, 2), v.subarray(2), zeros, ones, s).y, w);
  const y = bnForwardRef(xv, x.subarray(0, 2), x.subarray(2), zeros, ones, s).y;
  const b = bnBackwardRef(xv, y, w, x.subarray(0, 2), s);
  return { x, loss, grad: [...b.dgamma, ...b.dbeta] };
});

check("max pool 3×3/2 pad 1", (rng) => {
  const g = { nb: 1, ih: 5, iw: 6, c: 2, k: 3, stride: 2, pad: 1 };
  const [oh, ow] = poolOutSize(g);
  const x = vec(rng, 60), w = vec(rng, oh * ow * 2);
  const { arg } = maxPoolRef(x, g);
  return { x, loss: (v) => dot(maxPoolRef(v, g).y, w), grad: maxPoolBackwardRef(w, arg, 60) };
});
