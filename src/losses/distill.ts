/**
 * Point affinity distillation (the PLRC paper's point-level affinity term) in an exact fused form:
 * forward, backward w.r.t. the student's bottleneck Z_q and prototype logits L_q, and the centre EMA, all
 * on the GPU, with float64 references of both the naive release form and the fused form.
 *
 * Inputs are per-location head outputs on the h×w C5 grid of B images, rows in NHWC order:
 * Z_q, Z_t, Z_a [B·h·w, Db] and L_q, L_t [B·h·w, K]. For a matched pair m = (b, u, v) of S-grid positions
 * (u in A0, v in B0, position = row·S + col) the release builds, from maps upsampled bilinearly
 * (align_corners = False) to S×S,
 *
 *   s_m = [α·Zq↑[b,u]·Za↑[b,j] for j < S², Lq↑[b,u]],   t_m = [α·Zt↑[b,v]·Za↑[b,j] for j < S², Lt↑[b,v]],
 *
 * and L = (1/M) Σ_m −Σ_d softmax((t_m − c)/τt)[d]·log_softmax(s_m/τs)[d]; after the step
 * c ← μ·c + (1 − μ)·mean_m t_m. Upsampling is linear, so the fused kernels evaluate these entries from the
 * per-image Gram matrices Zq·Zaᵀ, Zt·Zaᵀ [hw, hw] and 4-corner blends of L rows; memory is
 * O(B·hw·hw + M·hw + B·hw·K), never O(M·(S² + K)).
 *
 * Sizes at the paper preset (B = 64, S = 56, h = w = 7, K = 4096, M ≈ 4400·B ≈ 282k): the largest bindings
 * are q [maxPairs, hw] (maxPairs·49·4 B ≈ 53 MiB), L_q/dL_q [B·hw, K] (≈ 49 MiB) and the CSR
 * [4·maxPairs] (≈ 4.3 MiB), all under the CPU adapters' 128 MiB binding limit; the limit is reached at
 * maxPairs ≈ 685k (hw = 49) or B·K ≈ 685k. Tensor allocation checks the limit and names the tensor.
 *
 * Step order: record `forward`, then `backward` (both read the current centre), then `centerUpdate`.
 *
 * @module
 */
import {
  alignmentSpec,
  centerSpec,
  DISTILL_WG,
  type DistillVariant,
  dlogitsSpec,
  dzSpec,
  gramSpec,
  hmatSpec,
  pairBackwardSpec,
  pairForwardSpec,
  pairGrid,
} from "../kernels/wgsl/distill.ts";
import { type OwnsTensors, TensorArena } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch, grid1d } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import { reduceAxis } from "../kernels/reduce.ts";

export type { DistillVariant };

/** Matched pairs of a batch (as {@link PlrcBatch}): A0 position u, B0 position v, image index. */
export interface DistillPairs {
  /** Position u in A0 of each pair (row · S + column). */
  pairA: Uint32Array;
  /** Position v in B0 of each pair (row · S + column). */
  pairB: Uint32Array;
  /** Image index of each pair. */
  pairImage: Uint32Array;
}

/** Options of {@link buildDistillation}. */
export interface DistillOptions {
  /** Student bottleneck (L2-normalised) [B·h·w, dimZ]; gets a gradient. */
  zq: Tensor;
  /** Student prototype logits [B·h·w, K]; gets a gradient. */
  lq: Tensor;
  /** Teacher (B0) bottleneck and logits; no gradient. */
  zt: Tensor;
  /** Teacher (B0) prototype logits [B·h·w, K]; no gradient. */
  lt: Tensor;
  /** Teacher on A1 [B·h·w, dimZ]: the affinity targets; no gradient. */
  za: Tensor;
  /** Images B. */
  batch: number;
  /** Feature-map height. */
  h: number;
  /** Feature-map width. */
  w: number;
  /** Pair grid S (positions row·S + col). */
  S: number;
  /** Bottleneck width. */
  dimZ: number;
  /** Prototypes K. */
  K: number;
  /** Capacity of the per-step pair list. */
  maxPairs: number;
  /** Student temperature (0.1 in the release). */
  tauS: number;
  /** Teacher temperature (the trainer's schedule sets it with `setTeacherTemperature`). */
  tauT: number;
  /** Affinity scale (1/128 in the release). */
  alpha: number;
  /** Centre momentum μ (0.9). */
  centerMomentum: number;
  /** Kernel variant of the per-pair kernels; by default `thread` on CPU adapters, `workgroup` on GPUs. */
  variant?: DistillVariant;
}

/** The bound distillation loss. */
export interface Distillation extends OwnsTensors {
  /** Mean CE over the pairs [1]. */
  loss: Tensor;
  /** Mean entropy (nats) of the centred, sharpened teacher over the pairs [1]; at most log(S² + K). */
  entropy: Tensor;
  /**
   * Mean of the centre's affinity block ÷ α [1], read before this step's centre update: the running mean
   * cosine of the teacher's bottleneck vectors with the anchors' (near 1 when the bottleneck has collapsed).
   */
  alignment: Tensor;
  /** dLoss/dZq [B·h·w, dimZ] and dLoss/dLq [B·h·w, K] (written, not accumulated). */
  dZq: Tensor;
  /** dLoss/dLq [B·h·w, K] (written, not accumulated). */
  dLq: Tensor;
  /** Computes `loss`, `entropy` and `alignment`. */
  forward: Dispatch[];
  /** Writes `dZq` and `dLq`; record after `forward`. */
  backward: Dispatch[];
  /** Moves `center` towards this step's teacher mean by the centre momentum; record after `backward`. */
  centerUpdate: Dispatch[];
  /** Centre [S² + K], starts at 0; updated in place by `centerUpdate`. */
  center: Tensor;
  /** Sets the teacher temperature τ_T for the next submit. */
  setTeacherTemperature(t: number): void;
  /** Sets this step's pairs (queued writes; no GPU wait). */
  upload(pairs: DistillPairs): void;
}

// ---------------------------------------------------------------------------------------------------------
// upsampling geometry (shared by the CSR builder and the references)

/** Source cells and weight of output `i` on an axis upsampled `inSize` → `outSize` (align_corners=False). */
export function upsampleAxis(i: number, inSize: number, outSize: number): { i0: number; i1: number; l: number } {
  const src = Math.max(((i + 0.5) * inSize) / outSize - 0.5, 0);
  const i0 = Math.min(Math.floor(src), inSize - 1);
  return { i0, i1: Math.min(i0 + 1, inSize - 1), l: src - i0 };
}

/** The 4 (possibly repeated) grid cells y·w + x and weights of S-grid position `pos`. */
export function upsampleCorners(pos: number, h: number, w: number, S: number): { cells: number[]; weights: number[] } {
  const ay = upsampleAxis(Math.floor(pos / S), h, S), ax = upsampleAxis(pos % S, w, S);
  return {
    cells: [ay.i0 * w + ax.i0, ay.i0 * w + ax.i1, ay.i1 * w + ax.i0, ay.i1 * w + ax.i1],
    weights: [(1 - ay.l) * (1 - ax.l), (1 - ay.l) * ax.l, ay.l * (1 - ax.l), ay.l * ax.l],
  };
}

/** Dense upsampling matrix U [S², h·w]: Y↑ = U·Y for one image's rows Y [h·w, D]. */
export function upsampleMatrix(h: number, w: number, S: number): Float64Array {
  const n = h * w, u = new Float64Array(S * S * n);
  for (let r = 0; r < S; r++) {
    const ay = upsampleAxis(r, h, S);
    for (let c = 0; c < S; c++) {
      const ax = upsampleAxis(c, w, S), row = (r * S + c) * n;
      u[row + ay.i0 * w + ax.i0] += (1 - ay.l) * (1 - ax.l);
      u[row + ay.i0 * w + ax.i1] += (1 - ay.l) * ax.l;
      u[row + ay.i1 * w + ax.i0] += ay.l * (1 - ax.l);
      u[row + ay.i1 * w + ax.i1] += ay.l * ax.l;
    }
  }
  return u;
}

/** Distinct corner cells of `pos` with summed weights (zero weights dropped), ascending by cell. */
function cornerMap(pos: number, h: number, w: number, S: number): [number, number][] {
  const { cells, weights } = upsampleCorners(pos, h, w, S);
  const m = new Map<number, number>();
  for (let i = 0; i < 4; i++) if (weights[i] !== 0) m.set(cells[i], (m.get(cells[i]) ?? 0) + weights[i]);
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

function checkPairs(p: DistillPairs, B: number, S: number): number {
  const M = p.pairA.length;
  if (p.pairB.length !== M || p.pairImage.length !== M) {
    throw new Error(`distillation pairs: pairA/pairB/pairImage lengths ${M}/${p.pairB.length}/${p.pairImage.length}`);
  }
  const P = S * S;
  for (let m = 0; m < M; m++) {
    if (p.pairImage[m] >= B || p.pairA[m] >= P || p.pairB[m] >= P) {
      throw new Error(
        `distillation pair ${m} = (${p.pairImage[m]}, ${p.pairA[m]}, ${p.pairB[m]}) is outside B = ${B}, S² = ${P}`,
      );
    }
  }
  return M;
}

/** CSR of pairs by (image, A0 corner cell): entries of global cell b·hw + c are ptr[·] .. ptr[· + 1]−1. */
export interface DistillCsr {
  /** [B·h·w + 1] */
  ptr: Uint32Array<ArrayBuffer>;
  /** Pair index per entry, ascending within a cell. */
  pair: Uint32Array<ArrayBuffer>;
  /** Bilinear weight w_u(m)[c] per entry (duplicate corners merged). */
  weight: Float32Array<ArrayBuffer>;
}

/**
 * Groups the pairs by (image, grid cell touched by the A0 position's bilinear corners): the gather index of
 * the backward (no float atomics). At most 4 entries per pair.
 */
export function distillCsr(pairs: DistillPairs, B: number, h: number, w: number, S: number): DistillCsr {
  const M = checkPairs(pairs, B, S), n = h * w;
  const byPos = new Map<number, [number, number][]>();
  const keys: number[] = [], ms: number[] = [], ws: number[] = [];
  for (let m = 0; m < M; m++) {
    const u = pairs.pairA[m];
    let cm = byPos.get(u);
    if (!cm) byPos.set(u, cm = cornerMap(u, h, w, S));
    for (const [c, wt] of cm) keys.push(pairs.pairImage[m] * n + c), ms.push(m), ws.push(wt);
  }
  const ptr = new Uint32Array(B * n + 1);
  for (const k of keys) ptr[k + 1]++;
  for (let t = 0; t < B * n; t++) ptr[t + 1] += ptr[t];
  const fill = ptr.slice(0, B * n), pair = new Uint32Array(keys.length), weight = new Float32Array(keys.length);
  for (let e = 0; e < keys.length; e++) {
    const at = fill[keys[e]]++;
    pair[at] = ms[e], weight[at] = ws[e];
  }
  return { ptr, pair, weight };
}

/** wv[b·hw + c] = Σ_{m in image b} w_v(m)[c]: the teacher corner mass per cell (for Σ_m t_m). */
export function teacherCellMass(pairs: DistillPairs, B: number, h: number, w: number, S: number): Float64Array {
  const M = checkPairs(pairs, B, S), n = h * w, out = new Float64Array(B * n);
  for (let m = 0; m < M; m++) {
    for (const [c, wt] of cornerMap(pairs.pairB[m], h, w, S)) out[pairs.pairImage[m] * n + c] += wt;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// GPU

/** Binds the fused distillation; see the module comment for the math and the step order. */
export async function buildDistillation(gpu: Gpu, o: DistillOptions): Promise<Distillation> {
  const { batch: B, h, w, S, dimZ, K, maxPairs: cap } = o;
  const n = h * w, P = S * S;
  for (const [name, v] of Object.entries({ batch: B, h, w, S, dimZ, K, maxPairs: cap })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`distillation: ${name} must be a positive integer, got ${v}`);
  }
  const expect = (t: Tensor, cols: number, what: string) => {
    if (t.numel !== B * n * cols) {
      throw new Error(`distillation: ${what} "${t.name}" has ${t.numel} elements, expected ${B * n}×${cols}`);
    }
  };
  expect(o.zq, dimZ, "zq"), expect(o.zt, dimZ, "zt"), expect(o.za, dimZ, "za");
  expect(o.lq, K, "lq"), expect(o.lt, K, "lt");
  const variant = o.variant ?? (gpu.summary.adapterClass === "cpu" ? "thread" : "workgroup");

  const arena = new TensorArena(gpu);
  const f = (shape: number[], name: string) => arena.alloc(shape, `distill ${name}`);
  const gq = f([B, n, n], "Gq"), gt = f([B, n, n], "Gt");
  const lseS = f([cap], "lse_s"), lseT = f([cap], "lse_t"), part = f([cap], "loss parts");
  const entPart = f([cap], "entropy parts"), entropy = f([1], "teacher entropy"), align = f([1], "alignment");
  const pairs = arena.alloc([cap, 3], "distill pairs", "u32");
  const cptr = arena.alloc([B * n + 1], "distill csr ptr", "u32");
  const cpair = arena.alloc([4 * cap], "distill csr pairs", "u32");
  const cw = f([4 * cap], "csr weights"), wv = f([B * n], "teacher cell mass");
  const q = f([cap, n], "q"), hm = f([B, n, n], "H");
  const dZq = f([B * n, dimZ], "dZq"), dLq = f([B * n, K], "dLq"), loss = f([1], "loss");
  const center = arena.track(Tensor.from(gpu, [P + K], new Float32Array(P + K), "f32", "distill center"));
  cptr.upload(new Uint32Array(B * n + 1));
  wv.upload(new Float32Array(B * n));

  const params = {
    nimg: B,
    h,
    w,
    grid: S,
    npos: P,
    ncell: n,
    k: K,
    dz: dimZ,
    m: 0,
    cap,
    taus: o.tauS,
    taut: o.tauT,
    alpha: o.alpha,
    mu: o.centerMomentum,
  };
  const gram = await bind(gpu, gramSpec(), [o.zq, o.zt, o.za, gq, gt], params, grid1d(B * n * n, DISTILL_WG));
  const fwd = await bind(
    gpu,
    pairForwardSpec(variant, n),
    [gq, gt, o.lq, o.lt, center, pairs, lseS, lseT, part, entPart],
    params,
    pairGrid(variant, cap),
  );
  const red = arena.adopt(await reduceAxis(gpu, part, 0, "sum", loss));
  const entRed = arena.adopt(await reduceAxis(gpu, entPart, 0, "sum", entropy));
  const alignment = await bind(gpu, alignmentSpec(), [center, align], params, [1, 1, 1]);
  const bwd = await bind(
    gpu,
    pairBackwardSpec(variant, n, S * w),
    [gq, gt, center, pairs, lseS, lseT, q],
    params,
    pairGrid(variant, cap),
  );
  const dl = await bind(
    gpu,
    dlogitsSpec(),
    [o.lq, o.lt, center, pairs, lseS, lseT, cptr, cpair, cw, dLq],
    params,
    grid1d(B * n * K, DISTILL_WG),
  );
  const hmat = await bind(gpu, hmatSpec(), [cptr, cpair, cw, q, hm], params, grid1d(B * n * n, DISTILL_WG));
  const dz = await bind(gpu, dzSpec(), [hm, o.za, dZq], params, grid1d(B * n * dimZ, DISTILL_WG));
  const cen = await bind(gpu, centerSpec(), [gt, o.lt, wv, center], params, grid1d(P + K, DISTILL_WG));
  const mine = [gram, fwd, bwd, dl, hmat, dz, cen, alignment];

  const write = (t: Tensor, data: Uint32Array<ArrayBuffer> | Float32Array<ArrayBuffer>) => {
    if (data.length) gpu.device.queue.writeBuffer(t.buffer, t.byteOffset, data);
  };
  return {
    loss,
    entropy,
    alignment: align,
    dZq,
    dLq,
    forward: [gram, fwd, ...red.dispatches, ...entRed.dispatches, alignment],
    backward: [bwd, dl, hmat, dz],
    centerUpdate: [cen],
    center,
    setTeacherTemperature(t: number) {
      if (!(t > 0)) throw new Error(`distillation: teacher temperature must be positive, got ${t}`);
      for (const d of mine) d.setParams({ taut: t });
    },
    upload(p: DistillPairs) {
      const M = checkPairs(p, B, S);
      if (M > cap) throw new Error(`distillation: ${M} pairs exceed maxPairs = ${cap}`);
      const packed = new Uint32Array(3 * M);
      for (let m = 0; m < M; m++) {
        packed[3 * m] = p.pairImage[m], packed[3 * m + 1] = p.pairA[m], packed[3 * m + 2] = p.pairB[m];
      }
      const csr = distillCsr(p, B, h, w, S);
      write(pairs, packed), write(cptr, csr.ptr), write(cpair, csr.pair), write(cw, csr.weight);
      write(wv, Float32Array.from(teacherCellMass(p, B, h, w, S)));
      for (const d of mine) d.setParams({ m: M });
    },
    owned: arena.owned,
  };
}

// ---------------------------------------------------------------------------------------------------------
// float64 references

/** Inputs of the references (arrays row-major as on the GPU). */
export interface DistillRefInput {
  /** Student bottleneck [B·h·w, dimZ]. */
  zq: ArrayLike<number>;
  /** Student logits [B·h·w, K]. */
  lq: ArrayLike<number>;
  /** Teacher bottleneck [B·h·w, dimZ]. */
  zt: ArrayLike<number>;
  /** Teacher logits [B·h·w, K]. */
  lt: ArrayLike<number>;
  /** Teacher bottleneck on A1 [B·h·w, dimZ] (the affinity targets). */
  za: ArrayLike<number>;
  /** The step's matched pairs. */
  pairs: DistillPairs;
  /** Images. */
  B: number;
  /** Feature-map height. */
  h: number;
  /** Feature-map width. */
  w: number;
  /** Pair grid S. */
  S: number;
  /** Bottleneck width. */
  dimZ: number;
  /** Prototypes K. */
  K: number;
  /** Student temperature. */
  tauS: number;
  /** Teacher temperature. */
  tauT: number;
  /** Affinity scale α. */
  alpha: number;
  /** Centre momentum μ. */
  mu: number;
  /** Centre before the step [S² + K]. */
  center: ArrayLike<number>;
}

/** Reference results: loss, gradients w.r.t. Zq and Lq, and the centre after the EMA. */
export interface DistillRefOutput {
  /** Mean cross-entropy over the pairs. */
  loss: number;
  /** Mean entropy (nats) of the teacher's distribution over the pairs. */
  entropy: number;
  /** dLoss/dZq. */
  dZq: Float64Array;
  /** dLoss/dLq. */
  dLq: Float64Array;
  /** The centre after this step's update. */
  center: Float64Array;
}

/**
 * The per-pair DINO CE over full vectors s, t of length E: returns the CE and the teacher's entropy, and
 * writes g = (softmax(s/τs) − softmax((t − c)/τt)) into `g` (not yet ÷ τs·M).
 */
function pairCe(
  s: Float64Array,
  t: Float64Array,
  c: ArrayLike<number>,
  tauS: number,
  tauT: number,
  g: Float64Array,
): { ce: number; entropy: number } {
  const E = s.length;
  let ms = -Infinity, mt = -Infinity;
  for (let d = 0; d < E; d++) ms = Math.max(ms, s[d] / tauS), mt = Math.max(mt, (t[d] - c[d]) / tauT);
  let zs = 0, zt = 0;
  for (let d = 0; d < E; d++) zs += Math.exp(s[d] / tauS - ms), zt += Math.exp((t[d] - c[d]) / tauT - mt);
  const lseS = ms + Math.log(zs), lseT = mt + Math.log(zt);
  let ce = 0, entropy = 0;
  for (let d = 0; d < E; d++) {
    const lt = (t[d] - c[d]) / tauT - lseT, pt = Math.exp(lt), ls = s[d] / tauS - lseS;
    ce -= pt * ls;
    entropy -= pt * lt;
    g[d] = Math.exp(ls) - pt;
  }
  return { ce, entropy };
}

/** The collapse monitor's alignment: the mean of the centre's first S² entries ÷ α. */
export function centerAlignment(center: ArrayLike<number>, S: number, alpha: number): number {
  let s = 0;
  for (let j = 0; j < S * S; j++) s += center[j];
  return s / (S * S * alpha);
}

/**
 * The NAIVE release form: upsample every map to S×S with the dense bilinear matrix, build the full
 * [S² + K] student and teacher vectors of every pair, DINO CE with centre; backward through the same
 * materialised tensors. Small sizes only.
 */
export function distillNaiveRef(x: DistillRefInput): DistillRefOutput {
  const { B, h, w, S, dimZ: D, K, alpha } = x, n = h * w, P = S * S, E = P + K;
  const U = upsampleMatrix(h, w, S);
  const up = (src: ArrayLike<number>, cols: number) => {
    const out = new Float64Array(B * P * cols);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < P; j++) {
        for (let c = 0; c < n; c++) {
          const wt = U[j * n + c];
          if (!wt) continue;
          for (let i = 0; i < cols; i++) out[(b * P + j) * cols + i] += wt * src[(b * n + c) * cols + i];
        }
      }
    }
    return out;
  };
  const zq = up(x.zq, D), zt = up(x.zt, D), za = up(x.za, D), lq = up(x.lq, K), lt = up(x.lt, K);
  const dzqUp = new Float64Array(B * P * D), dlqUp = new Float64Array(B * P * K), tsum = new Float64Array(E);
  const M = x.pairs.pairA.length;
  const s = new Float64Array(E), t = new Float64Array(E), g = new Float64Array(E);
  let loss = 0, entropy = 0;
  for (let m = 0; m < M; m++) {
    const b = x.pairs.pairImage[m], u = x.pairs.pairA[m], v = x.pairs.pairB[m];
    for (let j = 0; j < P; j++) {
      let ss = 0, st = 0;
      for (let i = 0; i < D; i++) {
        const a = za[(b * P + j) * D + i];
        ss += zq[(b * P + u) * D + i] * a, st += zt[(b * P + v) * D + i] * a;
      }
      s[j] = alpha * ss, t[j] = alpha * st;
    }
    for (let k = 0; k < K; k++) s[P + k] = lq[(b * P + u) * K + k], t[P + k] = lt[(b * P + v) * K + k];
    const pc = pairCe(s, t, x.center, x.tauS, x.tauT, g);
    loss += pc.ce / M, entropy += pc.entropy / M;
    for (let d = 0; d < E; d++) tsum[d] += t[d];
    const sc = 1 / (x.tauS * M);
    for (let j = 0; j < P; j++) {
      for (let i = 0; i < D; i++) dzqUp[(b * P + u) * D + i] += sc * g[j] * alpha * za[(b * P + j) * D + i];
    }
    for (let k = 0; k < K; k++) dlqUp[(b * P + u) * K + k] += sc * g[P + k];
  }
  const down = (dUp: Float64Array, cols: number) => {
    const out = new Float64Array(B * n * cols);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < P; j++) {
        for (let c = 0; c < n; c++) {
          const wt = U[j * n + c];
          if (!wt) continue;
          for (let i = 0; i < cols; i++) out[(b * n + c) * cols + i] += wt * dUp[(b * P + j) * cols + i];
        }
      }
    }
    return out;
  };
  const center = Float64Array.from(x.center, (c, d) => (M ? x.mu * c + (1 - x.mu) * tsum[d] / M : c));
  return { loss, entropy, dZq: down(dzqUp, D), dLq: down(dlqUp, K), center };
}

/**
 * The fused form, as the GPU computes it: per-image Gram matrices, 4-corner blends, the affinity gradient
 * pulled back through U per pair, H = Σ_m w_u ⊗ q_m per image and dZq = H·Za; logit gradients gathered per
 * (image, corner cell); Σ_m t_m from the teacher corner masses.
 */
export function distillFusedRef(x: DistillRefInput): DistillRefOutput {
  const { B, h, w, S, dimZ: D, K, alpha } = x, n = h * w, P = S * S, E = P + K;
  const gram = (z: ArrayLike<number>) => {
    const g = new Float64Array(B * n * n);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < n; c++) {
        for (let cp = 0; cp < n; cp++) {
          let s = 0;
          for (let i = 0; i < D; i++) s += z[(b * n + c) * D + i] * x.za[(b * n + cp) * D + i];
          g[(b * n + c) * n + cp] = s;
        }
      }
    }
    return g;
  };
  const gq = gram(x.zq), gt = gram(x.zt);
  const corners = Array.from({ length: P }, (_, j) => upsampleCorners(j, h, w, S));
  const blendRows = (G: Float64Array, b: number, pos: number) => {
    const r = new Float64Array(n), { cells, weights } = corners[pos];
    for (let i = 0; i < 4; i++) for (let cp = 0; cp < n; cp++) r[cp] += weights[i] * G[(b * n + cells[i]) * n + cp];
    return r;
  };
  const blendLogits = (L: ArrayLike<number>, b: number, pos: number, out: Float64Array) => {
    const { cells, weights } = corners[pos];
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let i = 0; i < 4; i++) s += weights[i] * L[(b * n + cells[i]) * K + k];
      out[P + k] = s;
    }
  };
  const M = x.pairs.pairA.length, sc = M ? 1 / (x.tauS * M) : 0;
  const s = new Float64Array(E), t = new Float64Array(E), g = new Float64Array(E);
  const gpair: Float64Array[] = [], qpair: Float64Array[] = [];
  let loss = 0, entropy = 0;
  for (let m = 0; m < M; m++) {
    const b = x.pairs.pairImage[m], u = x.pairs.pairA[m], v = x.pairs.pairB[m];
    const rs = blendRows(gq, b, u), rt = blendRows(gt, b, v);
    for (let j = 0; j < P; j++) {
      const { cells, weights } = corners[j];
      let as = 0, at = 0;
      for (let i = 0; i < 4; i++) as += weights[i] * rs[cells[i]], at += weights[i] * rt[cells[i]];
      s[j] = alpha * as, t[j] = alpha * at;
    }
    blendLogits(x.lq, b, u, s), blendLogits(x.lt, b, v, t);
    const pc = pairCe(s, t, x.center, x.tauS, x.tauT, g);
    loss += pc.ce / M, entropy += pc.entropy / M;
    const q = new Float64Array(n);
    for (let j = 0; j < P; j++) {
      const { cells, weights } = corners[j];
      for (let i = 0; i < 4; i++) q[cells[i]] += weights[i] * g[j] * alpha * sc;
    }
    qpair.push(q), gpair.push(g.slice(P).map((v) => v * sc));
  }
  // gathers over the CSR by (image, A0 corner cell)
  const csr = distillCsr(x.pairs, B, h, w, S);
  const dLq = new Float64Array(B * n * K), H = new Float64Array(B * n * n), dZq = new Float64Array(B * n * D);
  for (let cell = 0; cell < B * n; cell++) {
    for (let e = csr.ptr[cell]; e < csr.ptr[cell + 1]; e++) {
      const m = csr.pair[e], wt = cornerWeight(x.pairs.pairA[m], cell % n, h, w, S);
      for (let k = 0; k < K; k++) dLq[cell * K + k] += wt * gpair[m][k];
      for (let cp = 0; cp < n; cp++) H[cell * n + cp] += wt * qpair[m][cp];
    }
    const b = Math.floor(cell / n);
    for (let cp = 0; cp < n; cp++) {
      for (let i = 0; i < D; i++) dZq[cell * D + i] += H[cell * n + cp] * x.za[(b * n + cp) * D + i];
    }
  }
  // centre: Σ_m t_m = [α·U·(Σ_b wvᵀ Gt[b]), Σ_b wvᵀ Lt[b]]
  const wv = teacherCellMass(x.pairs, B, h, w, S), tsum = new Float64Array(E), rsum = new Float64Array(n);
  for (let cell = 0; cell < B * n; cell++) {
    for (let cp = 0; cp < n; cp++) rsum[cp] += wv[cell] * gt[cell * n + cp];
    for (let k = 0; k < K; k++) tsum[P + k] += wv[cell] * x.lt[cell * K + k];
  }
  for (let j = 0; j < P; j++) {
    const { cells, weights } = corners[j];
    for (let i = 0; i < 4; i++) tsum[j] += alpha * weights[i] * rsum[cells[i]];
  }
  const center = Float64Array.from(x.center, (c, d) => (M ? x.mu * c + (1 - x.mu) * tsum[d] / M : c));
  return { loss, entropy, dZq, dLq, center };
}

/** Summed bilinear weight of grid cell `c` for S-grid position `pos` (float64). */
function cornerWeight(pos: number, c: number, h: number, w: number, S: number): number {
  const { cells, weights } = upsampleCorners(pos, h, w, S);
  let s = 0;
  for (let i = 0; i < 4; i++) if (cells[i] === c) s += weights[i];
  return s;
}

/**
 * Watches the bottleneck for the collapse DINO-style heads can fall into when the bottleneck is narrow for
 * its initialisation: every z turns into the same vector, the teacher's affinities stop telling positions
 * apart and the term teaches nothing. The reading is the alignment (the mean cosine of the teacher's and the
 * anchors' bottleneck vectors, from the centre); the loss is no test, because a wide bottleneck with many
 * prototypes keeps the loss at log(S² + K) from the first step while z stays unaligned. The monitor fires
 * once, after `patience` consecutive steps above `threshold`.
 */
export class DistillCollapseMonitor {
  #run = 0;
  /** The step at which the collapse was detected (null until then). */
  collapsedAt: number | null = null;

  /** The trainer's patience for a run of `steps` steps: 10% of it, at least 16 steps. */
  static patienceFor(steps: number): number {
    return Math.max(16, Math.round(steps / 10));
  }

  /** Detects a collapse once the alignment stays above `threshold` for `patience` consecutive steps. */
  constructor(readonly patience: number, readonly threshold = 0.9) {}

  /** Feeds one step's alignment; true exactly once, at the step the collapse is detected. */
  observe(step: number, alignment: number): boolean {
    this.#run = alignment > this.threshold ? this.#run + 1 : 0;
    if (this.collapsedAt !== null || this.#run < this.patience) return false;
    this.collapsedAt = step;
    return true;
  }
}
