/**
 * WGSL templates of point affinity distillation in the exact fused form (see `losses/distill.ts`).
 *
 * Every map is an h×w grid of rows (NHWC) per image; the release upsamples them bilinearly
 * (align_corners = False) to S×S. Upsampling is linear, so an upsampled row is a 4-corner blend of grid rows
 * and the affinity of S-grid positions u and j is wᵤᵀ·G·Uⱼᵀ with G = Z·Z_aᵀ the [hw, hw] Gram matrix of the
 * image. The kernels below evaluate the S² + K entries of each matched pair on the fly from G and the logit
 * rows; nothing of size [M, S² + K] is stored.
 *
 * Kernels (uniform `P` fields are shared by all of them, see {@link DISTILL_UNIFORMS}):
 * - `distill_gram`: Gq = Zq·Zaᵀ and Gt = Zt·Zaᵀ per image.
 * - `distill_pair_fwd`: per pair, the joint log-softmax of the student and softmax of the centred teacher
 *   (online max / sum-exp), the pair's loss ÷ M, and both log-sum-exps for the backward.
 * - `distill_pair_bwd`: per pair, q[c'] = α/(τs·M) Σⱼ (pₛ − pₜ)[j]·U[j, c'], the affinity gradient pulled
 *   back through the upsampling of Z_a.
 * - `distill_dlogits`: dL_q as a gather over the pairs whose A0 position touches each grid cell (CSR).
 * - `distill_hmat`: H[b, c, c'] = Σ over the same CSR of wᵤ(m)[c]·q_m[c'].
 * - `distill_dz`: dZ_q[b, c] = Σ_c' H[b, c, c']·Z_a[b, c'].
 * - `distill_alignment`: the mean of the centre's affinity block ÷ α, i.e. the running mean cosine between
 *   the teacher's and the anchors' bottleneck vectors (the collapse monitor's reading).
 * - `distill_center`: c ← μ·c + (1 − μ)·mean_m t_m, with Σ_m t_m in fused form from per-image teacher
 *   corner masses.
 *
 * The per-pair kernels come in two variants: `thread` (one invocation per pair, private arrays, no
 * barriers; for CPU adapters) and `workgroup` (one workgroup per pair, tree reductions; for GPUs). All sums
 * run in a fixed order, so results are deterministic; there are no atomics.
 *
 * @module
 */
import { BUILTINS, f32, type Grid, grid1d, type KernelSpec, LINEAR_ID, read, u32, write } from "../../gpu/kernel.ts";

/** How a pair is spread over invocations (as the row kernels). */
export type DistillVariant = "thread" | "workgroup";

/** Workgroup size of every distillation kernel (pairs per workgroup in the thread variant). */
export const DISTILL_WG = 64;

/** Uniforms shared by the distillation kernels. */
export const DISTILL_UNIFORMS = [
  u32("nimg"), // B
  u32("h"),
  u32("w"),
  u32("grid"), // S
  u32("npos"), // S²
  u32("ncell"), // h·w
  u32("k"), // prototypes K
  u32("dz"), // bottleneck width
  u32("m"), // pairs this step
  u32("cap"), // maxPairs
  f32("taus"),
  f32("taut"),
  f32("alpha"),
  f32("mu"),
];

const NEG_MAX = "-3.4028234e38";

/** Bilinear (align_corners = False) source cells and weights of an S-grid position; pairs as vec4. */
const CORNERS = `
struct Ax { i0: u32, i1: u32, l: f32 }
fn axis(i: u32, insz: u32, outsz: u32) -> Ax {
  let src = max((f32(i) + 0.5) * f32(insz) / f32(outsz) - 0.5, 0.0);
  let i0 = min(u32(floor(src)), insz - 1u);
  return Ax(i0, min(i0 + 1u, insz - 1u), src - f32(i0));
}
struct Corners { c: vec4<u32>, w: vec4<f32> }
fn corners(pos: u32) -> Corners {
  let ay = axis(pos / P.grid, P.h, P.grid);
  let ax = axis(pos % P.grid, P.w, P.grid);
  let r0 = ay.i0 * P.w;
  let r1 = ay.i1 * P.w;
  return Corners(
    vec4<u32>(r0 + ax.i0, r0 + ax.i1, r1 + ax.i0, r1 + ax.i1),
    vec4<f32>((1.0 - ay.l) * (1.0 - ax.l), (1.0 - ay.l) * ax.l, ay.l * (1.0 - ax.l), ay.l * ax.l),
  );
}
fn inv_tm() -> f32 { return select(0.0, 1.0 / (P.taus * f32(P.m)), P.m > 0u); }
`;

/**
 * Online (max, Σexp) of the student and of the teacher, plus Σ exp(teacher)·student for the CE and
 * Σ exp(teacher)·teacher for the teacher's entropy (the collapse monitor).
 */
const SOFT = `
struct Soft { ms: f32, ss: f32, mt: f32, st: f32, wt: f32, et: f32 }
fn soft0() -> Soft { return Soft(${NEG_MAX}, 0.0, ${NEG_MAX}, 0.0, 0.0, 0.0); }
fn push(a: ptr<function, Soft>, xs: f32, xt: f32) {
  if (xs > (*a).ms) {
    (*a).ss = (*a).ss * exp((*a).ms - xs) + 1.0;
    (*a).ms = xs;
  } else {
    (*a).ss += exp(xs - (*a).ms);
  }
  if (xt > (*a).mt) {
    let r = exp((*a).mt - xt);
    (*a).st = (*a).st * r + 1.0;
    (*a).wt = (*a).wt * r + xs;
    (*a).et = (*a).et * r + xt;
    (*a).mt = xt;
  } else {
    let e = exp(xt - (*a).mt);
    (*a).st += e;
    (*a).wt += e * xs;
    (*a).et += e * xt;
  }
}
fn merge(a: Soft, b: Soft) -> Soft {
  let ms = max(a.ms, b.ms);
  let mt = max(a.mt, b.mt);
  let ea = exp(a.mt - mt);
  let eb = exp(b.mt - mt);
  return Soft(
    ms,
    a.ss * exp(a.ms - ms) + b.ss * exp(b.ms - ms),
    mt,
    a.st * ea + b.st * eb,
    a.wt * ea + b.wt * eb,
    a.et * ea + b.et * eb,
  );
}
`;

function spec(name: string, key: string | undefined, buffers: KernelSpec["buffers"], body: string): KernelSpec {
  return { name, key, buffers, uniforms: DISTILL_UNIFORMS, body: CORNERS + body };
}

/** Gq[b, c, c'] = Zq[b, c]·Za[b, c'] and Gt likewise; one invocation per (b, c, c'). */
export function gramSpec(): KernelSpec {
  return spec(
    "distill_gram",
    undefined,
    [read("zq"), read("zt"), read("za"), write("gq"), write("gt")],
    `
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(DISTILL_WG)};
  if (t >= P.nimg * P.ncell * P.ncell) { return; }
  let cp = t % P.ncell;
  let cell = t / P.ncell;
  let b = cell / P.ncell;
  let qa = cell * P.dz;
  let aa = (b * P.ncell + cp) * P.dz;
  var sq = 0.0;
  var st = 0.0;
  for (var i = 0u; i < P.dz; i++) {
    let a = za[aa + i];
    sq += zq[qa + i] * a;
    st += zt[qa + i] * a;
  }
  gq[t] = sq;
  gt[t] = st;
}`,
  );
}

/** Statements: rs/rt[c] = Σ corners of u (v) of the Gram rows, for c in [c0, N) step `step`. */
const rowBlend = (c0: string, step: string) => `
  let gb = b * N * N;
  for (var c = ${c0}; c < N; c += ${step}) {
    rs[c] = cu.w.x * gq[gb + cu.c.x * N + c] + cu.w.y * gq[gb + cu.c.y * N + c] +
      cu.w.z * gq[gb + cu.c.z * N + c] + cu.w.w * gq[gb + cu.c.w * N + c];
    rt[c] = cv.w.x * gt[gb + cv.c.x * N + c] + cv.w.y * gt[gb + cv.c.y * N + c] +
      cv.w.z * gt[gb + cv.c.z * N + c] + cv.w.w * gt[gb + cv.c.w * N + c];
  }`;

/** Expressions: student / teacher affinity entry at position j (corners `cj`) from rs / rt. */
const affS = "P.alpha * dot(cj.w, vec4<f32>(rs[cj.c.x], rs[cj.c.y], rs[cj.c.z], rs[cj.c.w]))";
const affT = "P.alpha * dot(cj.w, vec4<f32>(rt[cj.c.x], rt[cj.c.y], rt[cj.c.z], rt[cj.c.w]))";

/** Statements: `let s`, `let t`: student / teacher logit entry `kk` (4-corner blends of the L rows). */
const logitST = (kk: string) => `
    let s = dot(cu.w, vec4<f32>(lq[(lb + cu.c.x) * P.k + ${kk}], lq[(lb + cu.c.y) * P.k + ${kk}],
      lq[(lb + cu.c.z) * P.k + ${kk}], lq[(lb + cu.c.w) * P.k + ${kk}]));
    let t = dot(cv.w, vec4<f32>(lt[(lb + cv.c.x) * P.k + ${kk}], lt[(lb + cv.c.y) * P.k + ${kk}],
      lt[(lb + cv.c.z) * P.k + ${kk}], lt[(lb + cv.c.w) * P.k + ${kk}]));`;

const pairHead = `
  let b = pairs[3u * m];
  let cu = corners(pairs[3u * m + 1u]);
  let cv = corners(pairs[3u * m + 2u]);`;

/** Statements accumulating the pair's entries (j, k from `start` by `step`) into `var acc: Soft`. */
const accumulate = (start: string, step: string) => `
  var acc = soft0();
  for (var j = ${start}; j < P.npos; j += ${step}) {
    let cj = corners(j);
    push(&acc, ${affS} / P.taus, (${affT} - center[j]) / P.taut);
  }
  let lb = b * N;
  for (var kk = ${start}; kk < P.k; kk += ${step}) {${logitST("kk")}
    push(&acc, s / P.taus, (t - center[P.npos + kk]) / P.taut);
  }`;

const finish = `
    let ls = acc.ms + log(acc.ss);
    let lt_ = acc.mt + log(acc.st);
    lse_s[m] = ls;
    lse_t[m] = lt_;
    part[m] = (ls - acc.wt / acc.st) / f32(P.m);
    entropy_part[m] = (lt_ - acc.et / acc.st) / f32(P.m);`;

/**
 * Workgroups of the per-pair kernels for `cap` pairs: {@link DISTILL_WG} pairs per workgroup (`thread`), one
 * pair per workgroup (`workgroup`).
 */
export function pairGrid(variant: DistillVariant, cap: number): Grid {
  return variant === "thread" ? grid1d(cap, DISTILL_WG) : grid1d(cap, 1);
}

/**
 * Per-pair forward. Writes lse_s[m], lse_t[m], part[m] = CE_m / M and entropy_part[m] = H(teacher_m) / M
 * for m < M, and zeros for M ≤ m < cap (so that fixed-length sums are the loss and the mean entropy). `n` (= h·w) sizes the private or
 * workgroup copies of the blended Gram rows.
 */
export function pairForwardSpec(variant: DistillVariant, n: number): KernelSpec {
  const buffers = [
    read("gq"),
    read("gt"),
    read("lq"),
    read("lt"),
    read("center"),
    read("pairs", "u32"),
    write("lse_s"),
    write("lse_t"),
    write("part"),
    write("entropy_part"),
  ];
  const body = variant === "thread"
    ? `
const N = ${n}u;
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let m = ${LINEAR_ID(DISTILL_WG)};
  if (m >= P.cap) { return; }
  if (m >= P.m) {
    part[m] = 0.0;
    entropy_part[m] = 0.0;
    return;
  }
  var rs: array<f32, N>;
  var rt: array<f32, N>;${pairHead}${rowBlend("0u", "1u")}${accumulate("0u", "1u")}${finish}
}`
    : `
const N = ${n}u;
var<workgroup> rs: array<f32, N>;
var<workgroup> rt: array<f32, N>;
var<workgroup> red: array<Soft, ${DISTILL_WG}>;
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let m = wid.y * nwg.x + wid.x;
  if (m >= P.cap) { return; }
  if (m >= P.m) {
    if (lid.x == 0u) {
      part[m] = 0.0;
      entropy_part[m] = 0.0;
    }
    return;
  }${pairHead}${rowBlend("lid.x", `${DISTILL_WG}u`)}
  workgroupBarrier();${accumulate("lid.x", `${DISTILL_WG}u`)}
  red[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${DISTILL_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] = merge(red[lid.x], red[lid.x + s]); }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let acc = red[0];${finish}
  }
}`;
  return spec("distill_pair_fwd", `${variant}-n${n}`, buffers, SOFT + body);
}

/** Expression: (pₛ − pₜ)[j] of an affinity entry (needs cj, rs, rt, ls, lt_). */
const gradAff = `exp(${affS} / P.taus - ls) - exp((${affT} - center[j]) / P.taut - lt_)`;

/**
 * Per-pair backward of the affinity part: q[m, c'] = α/(τs·M) Σⱼ (pₛ − pₜ)[j]·U[j, c'] for m < M.
 * `n` = h·w; the workgroup variant also stages [S, w] row partials (`sw` = S·w).
 */
export function pairBackwardSpec(variant: DistillVariant, n: number, sw: number): KernelSpec {
  const buffers = [
    read("gq"),
    read("gt"),
    read("center"),
    read("pairs", "u32"),
    read("lse_s"),
    read("lse_t"),
    write("q"),
  ];
  const body = variant === "thread"
    ? `
const N = ${n}u;
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let m = ${LINEAR_ID(DISTILL_WG)};
  if (m >= P.m || m >= P.cap) { return; }
  var rs: array<f32, N>;
  var rt: array<f32, N>;
  var acc: array<f32, N>;${pairHead}${rowBlend("0u", "1u")}
  let ls = lse_s[m];
  let lt_ = lse_t[m];
  for (var c = 0u; c < N; c++) { acc[c] = 0.0; }
  for (var j = 0u; j < P.npos; j++) {
    let cj = corners(j);
    let g = ${gradAff};
    acc[cj.c.x] += cj.w.x * g;
    acc[cj.c.y] += cj.w.y * g;
    acc[cj.c.z] += cj.w.z * g;
    acc[cj.c.w] += cj.w.w * g;
  }
  let sc = P.alpha * inv_tm();
  for (var c = 0u; c < N; c++) { q[m * N + c] = acc[c] * sc; }
}`
    : `
const N = ${n}u;
var<workgroup> rs: array<f32, N>;
var<workgroup> rt: array<f32, N>;
var<workgroup> tr: array<f32, ${sw}>;
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let m = wid.y * nwg.x + wid.x;
  if (m >= P.m || m >= P.cap) { return; }${pairHead}${rowBlend("lid.x", `${DISTILL_WG}u`)}
  workgroupBarrier();
  let ls = lse_s[m];
  let lt_ = lse_t[m];
  // rows of the S grid: tr[r, x] = Σ_col wx_col(x)·g[r, col] (each row owned by one invocation)
  for (var r = lid.x; r < P.grid; r += ${DISTILL_WG}u) {
    for (var x = 0u; x < P.w; x++) { tr[r * P.w + x] = 0.0; }
    for (var col = 0u; col < P.grid; col++) {
      let j = r * P.grid + col;
      let cj = corners(j);
      let g = ${gradAff};
      let ax = axis(col, P.w, P.grid);
      tr[r * P.w + ax.i0] += (1.0 - ax.l) * g;
      tr[r * P.w + ax.i1] += ax.l * g;
    }
  }
  workgroupBarrier();
  // cells: q[(y, x)] = Σ_r wy_r(y)·tr[r, x]
  let sc = P.alpha * inv_tm();
  for (var c = lid.x; c < N; c += ${DISTILL_WG}u) {
    let y = c / P.w;
    let x = c % P.w;
    var s = 0.0;
    for (var r = 0u; r < P.grid; r++) {
      let ay = axis(r, P.h, P.grid);
      let wy = select(0.0, 1.0 - ay.l, ay.i0 == y) + select(0.0, ay.l, ay.i1 == y);
      s += wy * tr[r * P.w + x];
    }
    q[m * N + c] = s * sc;
  }
}`;
  return spec("distill_pair_bwd", `${variant}-n${n}-sw${sw}`, buffers, body);
}

/**
 * dLq[b·hw + c, k] = 1/(τs·M) Σ_{(m, w) in CSR(b, c)} w·(pₛ − pₜ)[S² + k]; one invocation per output.
 */
export function dlogitsSpec(): KernelSpec {
  return spec(
    "distill_dlogits",
    undefined,
    [
      read("lq"),
      read("lt"),
      read("center"),
      read("pairs", "u32"),
      read("lse_s"),
      read("lse_t"),
      read("cptr", "u32"),
      read("cpair", "u32"),
      read("cw"),
      write("dlq"),
    ],
    `
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let idx = ${LINEAR_ID(DISTILL_WG)};
  if (idx >= P.nimg * P.ncell * P.k) { return; }
  let kk = idx % P.k;
  let cell = idx / P.k;
  let lb = (cell / P.ncell) * P.ncell;
  let cen = center[P.npos + kk];
  var acc = 0.0;
  for (var e = cptr[cell]; e < cptr[cell + 1u]; e++) {
    let m = cpair[e];
    let cu = corners(pairs[3u * m + 1u]);
    let cv = corners(pairs[3u * m + 2u]);${logitST("kk")}
    acc += cw[e] * (exp(s / P.taus - lse_s[m]) - exp((t - cen) / P.taut - lse_t[m]));
  }
  dlq[idx] = acc * inv_tm();
}`,
  );
}

/** H[b, c, c'] = Σ_{(m, w) in CSR(b, c)} w·q[m, c']; one invocation per (b, c, c'). */
export function hmatSpec(): KernelSpec {
  return spec(
    "distill_hmat",
    undefined,
    [read("cptr", "u32"), read("cpair", "u32"), read("cw"), read("q"), write("hm")],
    `
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(DISTILL_WG)};
  if (t >= P.nimg * P.ncell * P.ncell) { return; }
  let cp = t % P.ncell;
  let cell = t / P.ncell;
  var acc = 0.0;
  for (var e = cptr[cell]; e < cptr[cell + 1u]; e++) { acc += cw[e] * q[cpair[e] * P.ncell + cp]; }
  hm[t] = acc;
}`,
  );
}

/** dZq[b·hw + c, i] = Σ_c' H[b, c, c']·Za[b·hw + c', i]; one invocation per output. */
export function dzSpec(): KernelSpec {
  return spec(
    "distill_dz",
    undefined,
    [read("hm"), read("za"), write("dzq")],
    `
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let t = ${LINEAR_ID(DISTILL_WG)};
  if (t >= P.nimg * P.ncell * P.dz) { return; }
  let i = t % P.dz;
  let cell = t / P.dz;
  let a0 = (cell / P.ncell) * P.ncell;
  var acc = 0.0;
  for (var cp = 0u; cp < P.ncell; cp++) { acc += hm[cell * P.ncell + cp] * za[(a0 + cp) * P.dz + i]; }
  dzq[t] = acc;
}`,
  );
}

/**
 * Centre EMA: center[d] ← μ·center[d] + (1 − μ)·(Σ_m t_m[d])/M (unchanged when M = 0), where
 * Σ_m t_m = [α·U·(Σ_b wvᵦᵀ·Gt[b]), Σ_b wvᵦᵀ·Lt[b]] and wv[b, c] = Σ_{m in image b} w_v(m)[c].
 */
export function centerSpec(): KernelSpec {
  return spec(
    "distill_center",
    undefined,
    [read("gt"), read("lt"), read("wv"), write("center")],
    `
fn gtcol(cp: u32) -> f32 {
  var s = 0.0;
  for (var cell = 0u; cell < P.nimg * P.ncell; cell++) {
    s += wv[cell] * gt[cell * P.ncell + cp];
  }
  return s;
}
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  let d = ${LINEAR_ID(DISTILL_WG)};
  if (d >= P.npos + P.k || P.m == 0u) { return; }
  var s = 0.0;
  if (d < P.npos) {
    let cj = corners(d);
    s = P.alpha * dot(cj.w, vec4<f32>(gtcol(cj.c.x), gtcol(cj.c.y), gtcol(cj.c.z), gtcol(cj.c.w)));
  } else {
    let kk = d - P.npos;
    for (var cell = 0u; cell < P.nimg * P.ncell; cell++) { s += wv[cell] * lt[cell * P.k + kk]; }
  }
  center[d] = P.mu * center[d] + (1.0 - P.mu) * s / f32(P.m);
}`,
  );
}

/**
 * align[0] = Σ_{j < S²} center[j] / (S²·α): the centre's affinity block is a running mean of
 * α·z_t↑·z_a↑ over pairs and positions, so this is the mean cosine of the teacher's bottleneck vectors with
 * the anchors' (≈ 1 when every z points the same way). One workgroup, fixed summation order.
 */
export function alignmentSpec(): KernelSpec {
  return spec(
    "distill_alignment",
    undefined,
    [read("center"), write("align")],
    `
var<workgroup> red: array<f32, ${DISTILL_WG}>;
@compute @workgroup_size(${DISTILL_WG})
fn main(${BUILTINS}) {
  var s = 0.0;
  for (var j = lid.x; j < P.npos; j += ${DISTILL_WG}u) { s += center[j]; }
  red[lid.x] = s;
  workgroupBarrier();
  for (var k = ${DISTILL_WG / 2}u; k > 0u; k >>= 1u) {
    if (lid.x < k) { red[lid.x] += red[lid.x + k]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { align[0] = red[0] / (f32(P.npos) * P.alpha); }
}`,
  );
}
