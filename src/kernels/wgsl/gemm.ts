/**
 * The GEMM / implicit-GEMM convolution template.
 *
 * One template covers every product the ResNet needs, as a convolution over NHWC tensors with weights
 * stored [KH·KW, Cin, Cout] (HWIO):
 *
 * - `fwd`:   out[m=(n,oy,ox), co] = Σ_{seg=(ky,kx), ci} X[n, oy·s−p+ky, ox·s−p+kx, ci] · W(seg, ci, co)
 * - `dgrad`: out[m=(n,y,x), ci]   = Σ_{seg, co} dY[n, (y+p−ky)/s, (x+p−kx)/s, co] · W(seg, co → ci)
 * - `wgrad`: out[r=(seg,ci), co]  = Σ_{m=(n,oy,ox)} X[n, oy·s−p+ky, ox·s−p+kx, ci] · dY[m, co]
 *
 * A dense GEMM is the 1×1, stride-1 case (`dense` skips the gathers): `fwd` is A·B (or A·Bᵀ with the
 * `nk` weight layout), `dgrad` is A·Bᵀ / A·B, `wgrad` is Aᵀ·B. `wgrad` reduces over the long axis and
 * is split along it (grid z), writing partial sums that a deterministic reduction adds up.
 *
 * Two code shapes, chosen per adapter:
 * - `register` (CPU adapters): no workgroup memory; each invocation owns an RM × 4V block of outputs in
 *   named variables (straight-line code, never an indexed private array) and loads straight from storage.
 * - `tiled` (GPUs): 16×16 invocations, A and B tiles staged in workgroup memory, an RM × 4V register
 *   block per invocation, again fully unrolled.
 *
 * @module
 */
import { type Grid, type KernelSpec, read, u32, write } from "../../gpu/kernel.ts";

/** Which product. */
export type GemmMode = "fwd" | "dgrad" | "wgrad";
/** Weight layout of B for fwd/dgrad: `kn` = [seg][k][n] (row-major K×N), `nk` = [seg][n][k]. */
export type BLayout = "kn" | "nk";
/** Kernel shape. */
export type GemmShape = "register" | "tiled";

/** Fused output operations (fwd/dgrad only): out = relu((acc + bias[c])·scale[c] + shift[c] + residual[m, c]). */
export interface Epilogue {
  bias?: boolean;
  /** Per-channel scale and shift (e.g. an eval-mode BN folded into the convolution). */
  affine?: boolean;
  residual?: boolean;
  relu?: boolean;
}

/** Kernel shape and register block: what fixes a GEMM pipeline's tile geometry. */
export interface GemmTile {
  /** Register-blocked or workgroup-tiled kernel. */
  shape: GemmShape;
  /** Rows per invocation. */
  rm: number;
  /** vec4 column groups per invocation (4·V columns). */
  v: number;
}

/** Everything that specialises a GEMM pipeline (shapes travel in uniforms). */
export interface GemmConfig extends GemmTile {
  mode: GemmMode;
  bLayout: BLayout;
  /** 1×1, stride 1, no padding: plain matrix indexing. */
  dense: boolean;
  /** Column groups are not whole ({@link gemmEdge}): clamp column loads. */
  edge: boolean;
  epilogue: Epilogue;
}

/** Uniform names, in order; unused ones are zero. */
export const GEMM_UNIFORMS = [
  "rows",
  "cols",
  "kin",
  "segs",
  "nb",
  "ih",
  "iw",
  "oh",
  "ow",
  "kw",
  "stride",
  "pad",
  "cin",
  "mred",
  "chunk",
] as const;

/** Invocations per workgroup side: 8×8 for `register`, 16×16 for `tiled`. */
export function gemmWorkgroup(shape: GemmShape): number {
  return shape === "register" ? 8 : 16;
}

/** Tile K-depth of the tiled shape. */
export const TILE_K = 16;

/**
 * Outputs one workgroup computes: each of its side × side invocations owns an RM × 4V register block, so
 * (side·RM) rows × (side·4V) columns (the tiled shape stages exactly this tile in workgroup memory).
 */
export function gemmTileSize(t: GemmTile): { rows: number; cols: number } {
  const side = gemmWorkgroup(t.shape);
  return { rows: side * t.rm, cols: side * 4 * t.v };
}

/** Workgroups of a `rows` × `cols` product: one per output tile, `z` along grid z (wgrad's splits). */
export function gemmGrid(t: GemmTile, rows: number, cols: number, z = 1): Grid {
  const tile = gemmTileSize(t);
  return [Math.ceil(cols / tile.cols), Math.ceil(rows / tile.rows), z];
}

/**
 * Whether `cols` needs the `edge` variant (clamped column loads). Unclamped loads need whole column groups:
 * one invocation's 4V columns for `register` (invocations past the last column return early), the
 * workgroup's whole tile width for `tiled` (B is staged a full tile row at a time).
 */
export function gemmEdge(t: GemmTile, cols: number): boolean {
  const whole = t.shape === "register" ? 4 * t.v : gemmTileSize(t).cols;
  return cols % whole !== 0;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The pipeline key for a config. */
export function gemmKey(c: GemmConfig): string {
  // the epilogue's parts name themselves, so an absent one is left out rather than left empty
  const e = c.epilogue;
  return [
    c.mode,
    c.shape,
    `${c.rm}x${4 * c.v}`,
    c.bLayout,
    c.dense ? "dense" : "conv",
    c.edge ? "edge" : "fit",
    e.bias ? "bias" : "",
    e.affine ? "affine" : "",
    e.residual ? "res" : "",
    e.relu ? "relu" : "",
  ].filter((part) => part !== "").join(".");
}

/** Kernel spec for `c`. Bindings: A, B, out, then bias and residual when the epilogue uses them. */
export function gemmSpec(c: GemmConfig): KernelSpec {
  const buffers = [read("A"), read("Bm", vec4B(c) ? "vec4<f32>" : "f32"), write("out")];
  if (c.epilogue.bias) buffers.push(read("bias"));
  if (c.epilogue.affine) buffers.push(read("scale"), read("shift"));
  if (c.epilogue.residual) buffers.push(read("res"));
  const body = c.shape === "register" ? registerBody(c) : tiledBody(c);
  return {
    name: `gemm_${c.mode}`,
    key: gemmKey(c),
    buffers,
    uniforms: GEMM_UNIFORMS.map(u32),
    body,
  };
}

/**
 * B is read as vec4 when its rows are contiguous in the output columns (wgrad's dY, the `kn` layout) and
 * every column group is whole.
 */
function vec4B(c: GemmConfig): boolean {
  if (c.edge) return false;
  return c.mode === "wgrad" || c.bLayout === "kn";
}

/**
 * The fused epilogue on accumulator expression `v` of output column `col`, in the output row starting at
 * offset `o` (row × cols): + bias, × scale + shift, + residual, ReLU, in that order.
 */
function epilogue(e: Epilogue, v: string, col: string, o: string): string {
  if (e.bias) v = `${v} + bias[${col}]`;
  if (e.affine) v = `(${v}) * scale[${col}] + shift[${col}]`;
  if (e.residual) v = `${v} + res[${o} + ${col}]`;
  if (e.relu) v = `max(${v}, 0.0)`;
  return v;
}

/**
 * Epilogue and guarded stores of an invocation's RM × 4V register block, for both shapes: `acc(r, j)` is
 * the accumulator of block row r and column j, `outRow(r)` and `outCol(j)` their output coordinates.
 * wgrad's splits write their partial sums `zoff` apart.
 */
function stores(
  c: GemmConfig,
  acc: (r: number, j: number) => string,
  outRow: (r: number) => string,
  outCol: (j: number) => string,
): string {
  const lines: string[] = [];
  for (const r of range(c.rm)) {
    lines.push(`if (${outRow(r)} < P.rows) {`);
    lines.push(`  let o${r} = ${outRow(r)} * P.cols;`);
    for (const j of range(4 * c.v)) {
      const col = outCol(j);
      const v = epilogue(c.epilogue, acc(r, j), col, `o${r}`);
      lines.push(`  if (${col} < P.cols) { out[${c.mode === "wgrad" ? `zoff + ` : ""}o${r} + ${col}] = ${v}; }`);
    }
    lines.push(`}`);
  }
  return lines.join("\n  ");
}

function registerBody(c: GemmConfig): string {
  const RM = c.rm, V = c.v, CN = 4 * V;
  const R = range(RM), VV = range(V);
  const decl = R.flatMap((r) => VV.map((v) => `var acc${r}_${v} = vec4<f32>(0.0);`)).join("\n  ");
  const col = (j: number) => c.edge ? `min(c0 + ${j}u, P.cols - 1u)` : `c0 + ${j}u`;
  const fma = (a: (r: number) => string) =>
    R.flatMap((r) => VV.map((v) => `acc${r}_${v} = fma(vec4<f32>(${a(r)}), b${v}, acc${r}_${v});`)).join("\n      ");
  let loop: string;

  if (c.mode === "wgrad") {
    // rows are (seg, ci); the reduction walks output pixels m = (n, oy, ox) of this split's chunk
    const rowSetup = R.map((r) =>
      `let rr${r} = min(r0 + ${r}u, P.rows - 1u);` +
      (c.dense ? "" : ` let sg${r} = rr${r} / P.cin; let ci${r} = rr${r} % P.cin;` +
        ` let ky${r} = i32(sg${r} / P.kw); let kx${r} = i32(sg${r} % P.kw);`)
    ).join("\n  ");
    const bLoads = VV.map((v) =>
      vec4B(c)
        ? `let b${v} = Bm[(m * P.cols + c0) / 4u + ${v}u];`
        : `let b${v} = vec4<f32>(${range(4).map((q) => `Bm[m * P.cols + ${col(4 * v + q)}]`).join(", ")});`
    ).join("\n      ");
    const aLoads = c.dense
      ? R.map((r) => `let a${r} = A[m * P.rows + rr${r}];`).join("\n      ")
      : R.map((r) =>
        `let yy${r} = iy0 + ky${r}; let xx${r} = ix0 + kx${r};` +
        ` let ok${r} = yy${r} >= 0 && yy${r} < i32(P.ih) && xx${r} >= 0 && xx${r} < i32(P.iw);` +
        ` let a${r} = select(0.0, A[select(0u, ((n * P.ih + u32(yy${r})) * P.iw + u32(xx${r})) * P.cin + ci${r}, ok${r})], ok${r});`
      ).join("\n      ");
    loop = `${rowSetup}
  let m0 = g.z * P.chunk;
  let m1 = min(P.mred, m0 + P.chunk);
  var n = m0 / (P.oh * P.ow);
  var oy = (m0 / P.ow) % P.oh;
  var ox = m0 % P.ow;
  for (var m = m0; m < m1; m++) {
      let iy0 = i32(oy * P.stride) - i32(P.pad);
      let ix0 = i32(ox * P.stride) - i32(P.pad);
      ${bLoads}
      ${aLoads}
      ${fma((r) => `a${r}`)}
      ox++;
      if (ox == P.ow) { ox = 0u; oy++; if (oy == P.oh) { oy = 0u; n++; } }
  }`;
  } else {
    // rows are output pixels (fwd) or input pixels (dgrad); the reduction is segments × kin
    const rowSetup = R.map((r) => {
      const m = `m${r}`;
      if (c.dense) return `let ${m} = min(r0 + ${r}u, P.rows - 1u);`;
      const [hh, ww] = c.mode === "fwd" ? ["P.oh", "P.ow"] : ["P.ih", "P.iw"];
      return `let ${m} = min(r0 + ${r}u, P.rows - 1u); let n${r} = ${m} / (${hh} * ${ww});` +
        ` let py${r} = i32((${m} / ${ww}) % ${hh}); let px${r} = i32(${m} % ${ww});`;
    }).join("\n  ");
    const segSetup = c.dense ? R.map((r) => `let base${r} = m${r} * P.kin;`).join("\n    ") : R.map((r) => {
      if (c.mode === "fwd") {
        return `let yy${r} = py${r} * i32(P.stride) - i32(P.pad) + ky; let xx${r} = px${r} * i32(P.stride) - i32(P.pad) + kx;` +
          ` let ok${r} = yy${r} >= 0 && yy${r} < i32(P.ih) && xx${r} >= 0 && xx${r} < i32(P.iw);` +
          ` let base${r} = select(0u, ((n${r} * P.ih + u32(yy${r})) * P.iw + u32(xx${r})) * P.kin, ok${r});` +
          ` let f${r} = select(0.0, 1.0, ok${r});`;
      }
      // dgrad: output position (ty/s, tx/s) must be integral and inside the output
      return `let ty${r} = py${r} + i32(P.pad) - ky; let tx${r} = px${r} + i32(P.pad) - kx;` +
        ` let ok${r} = ty${r} >= 0 && tx${r} >= 0 && ty${r} % i32(P.stride) == 0 && tx${r} % i32(P.stride) == 0` +
        ` && ty${r} / i32(P.stride) < i32(P.oh) && tx${r} / i32(P.stride) < i32(P.ow);` +
        ` let base${r} = select(0u, ((n${r} * P.oh + u32(ty${r} / i32(P.stride))) * P.ow + u32(tx${r} / i32(P.stride))) * P.kin, ok${r});` +
        ` let f${r} = select(0.0, 1.0, ok${r});`;
    }).join("\n    ");
    const bLoads = c.bLayout === "kn"
      ? VV.map((v) =>
        vec4B(c)
          ? `let b${v} = Bm[(bk + c0) / 4u + ${v}u];`
          : `let b${v} = vec4<f32>(${range(4).map((q) => `Bm[bk + ${col(4 * v + q)}]`).join(", ")});`
      ).join("\n      ")
      : VV.map((v) => `let b${v} = vec4<f32>(${range(4).map((q) => `Bm[bn${4 * v + q} + k]`).join(", ")});`).join(
        "\n      ",
      );
    const bPre = c.bLayout === "kn" ? "let bk = (seg * P.kin + k) * P.cols;" : "";
    const bSeg = c.bLayout === "nk"
      ? range(CN).map((j) => `let bn${j} = (seg * P.cols + ${col(j)}) * P.kin;`).join(" ")
      : "";
    const aLoads = R.map((r) => c.dense ? `let a${r} = A[base${r} + k];` : `let a${r} = A[base${r} + k] * f${r};`)
      .join("\n      ");
    loop = `${rowSetup}
  for (var seg = 0u; seg < P.segs; seg++) {
    let ky = i32(seg / P.kw); let kx = i32(seg % P.kw);
    ${segSetup}
    ${bSeg}
    for (var k = 0u; k < P.kin; k++) {
      ${bPre}
      ${bLoads}
      ${aLoads}
      ${fma((r) => `a${r}`)}
    }
  }`;
  }
  const acc = (r: number, j: number) => `acc${r}_${Math.floor(j / 4)}[${j % 4}]`;
  const side = gemmWorkgroup(c.shape);
  return `
@compute @workgroup_size(${side}, ${side})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let c0 = g.x * ${CN}u;
  let r0 = g.y * ${RM}u;
  if (r0 >= P.rows || c0 >= P.cols) { return; }
  let zoff = g.z * P.rows * P.cols;
  ${decl}
  ${loop}
  ${stores(c, acc, (r) => `(r0 + ${r}u)`, (j) => `c0 + ${j}u`)}
}`;
}

/**
 * The tiled shape: each workgroup of 16×16 threads computes a (16·RM) × (64·V) tile ({@link gemmTileSize});
 * A and B tiles of depth TILE_K are staged in workgroup memory (zero outside) by {@link productStaging}.
 * Thread (tx, ty) owns rows ty + 16·r and vec4 column groups tx + 16·v, so that neighbouring threads touch
 * neighbouring addresses.
 */
function tiledBody(c: GemmConfig): string {
  const RM = c.rm, V = c.v, TK = TILE_K;
  const { rows: TM, cols: TN } = gemmTileSize(c);
  const side = gemmWorkgroup(c.shape);
  const R = range(RM), VV = range(V);
  const decl = R.flatMap((r) => VV.map((v) => `var acc${r}_${v} = vec4<f32>(0.0);`)).join("\n  ");
  // reduction length: taps × input channels, or (wgrad) this split's chunk of output pixels
  const red = c.mode === "wgrad" ? "m1 - m0" : "P.segs * P.kin";
  const prod = productStaging(c, TM, TN);
  const body = [
    ...VV.map((v) => `let b${v} = Bs[k][tx + ${side * v}u];`),
    ...R.map((r) => `let a${r} = As[k][ty + ${side * r}u];`),
    ...R.flatMap((r) => VV.map((v) => `acc${r}_${v} = fma(vec4<f32>(a${r}), b${v}, acc${r}_${v});`)),
  ].join("\n      ");
  const acc = (r: number, j: number) => `acc${r}_${Math.floor(j / 4)}[${j % 4}]`;
  // thread column group v covers columns col0 + (tx + 16v)·4 .. +3
  const outRow = (r: number) => `(row0 + ty + ${side * r}u)`;
  const outCol = (j: number) => `(col0 + (tx + ${side * Math.floor(j / 4)}u) * 4u + ${j % 4}u)`;
  return `
// rows padded by one element / one vec4 so that the k-major stores of stageProduct avoid bank conflicts
var<workgroup> As: array<array<f32, ${TM + 1}>, ${TK}>;
var<workgroup> Bs: array<array<vec4<f32>, ${TN / 4 + 1}>, ${TK}>;
@compute @workgroup_size(${side}, ${side})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x; let ty = lid.y; let tid = ty * ${side}u + tx;
  let row0 = wid.y * ${TM}u; let col0 = wid.x * ${TN}u;
  let zoff = wid.z * P.rows * P.cols;
  let m0 = ${c.mode === "wgrad" ? "wid.z * P.chunk" : "0u"};
  let m1 = ${c.mode === "wgrad" ? "min(P.mred, m0 + P.chunk)" : "0u"};
  let red = ${red};
  ${decl}
  ${prod.pre}
  for (var k0 = 0u; k0 < red; k0 += ${TK}u) {
    ${prod.stage}
    workgroupBarrier();
    for (var k = 0u; k < ${TK}u; k++) {
      ${body}
    }
    workgroupBarrier();
  }
  ${stores(c, acc, outRow, outCol)}
}`;
}

/**
 * Tile staging of the tiled kernels. Each thread stages one reduction index per tile step (kk = k0 +
 * tid % 16 for fwd/dgrad, an output pixel m = m0 + k0 + tid / 16 for wgrad) for rows ra + 16·i, so
 * what depends on the row only (image, y, x; or tap, channel) is computed once before the K loop and
 * what depends on the reduction index once per tile step; neighbouring threads read neighbouring NHWC
 * addresses. B rows contiguous in the columns (`kn`, wgrad's dY) are staged as vec4 when whole, the `nk`
 * layout like A.
 */
function productStaging(c: GemmConfig, TM: number, TN: number): { pre: string; stage: string } {
  if ((TM * TILE_K) % 256 || TM % 16 || TN % 64) throw new Error(`gemm: tile ${TM}×${TN} does not fit 16×16 threads`);
  const rows = range(TM / 16), bRows = range(TN / 16);
  const [hh, ww] = c.mode === "fwd" ? ["P.oh", "P.ow"] : ["P.ih", "P.iw"];
  if (c.mode === "wgrad") return wgradStaging(c, TM, TN);
  const pre = [
    "let ka = tid % 16u; let ra = tid / 16u;",
    ...rows.map((i) =>
      `let ar${i} = row0 + ra + ${16 * i}u; let av${i} = ar${i} < P.rows;` +
      (c.dense ? "" : ` let an${i} = ar${i} / (${hh} * ${ww}); let apy${i} = i32((ar${i} / ${ww}) % ${hh});` +
        ` let apx${i} = i32(ar${i} % ${ww});`)
    ),
  ];
  const st: string[] = ["let kk = k0 + ka; let kok = kk < red;"];
  st.push(c.dense ? "let sseg = 0u; let sk = kk;" : "let sseg = kk / P.kin; let sk = kk % P.kin;");
  if (!c.dense) st.push("let ky = i32(sseg / P.kw); let kx = i32(sseg % P.kw); let s = i32(P.stride);");
  for (const i of rows) {
    let ok: string, idx: string;
    if (c.dense) {
      ok = `av${i} && kok`;
      idx = `ar${i} * P.kin + sk`;
    } else if (c.mode === "fwd") {
      st.push(`let yy${i} = apy${i} * s - i32(P.pad) + ky; let xx${i} = apx${i} * s - i32(P.pad) + kx;`);
      ok = `av${i} && kok && yy${i} >= 0 && yy${i} < i32(P.ih) && xx${i} >= 0 && xx${i} < i32(P.iw)`;
      idx = `((an${i} * P.ih + u32(yy${i})) * P.iw + u32(xx${i})) * P.kin + sk`;
    } else {
      st.push(`let ty${i} = apy${i} + i32(P.pad) - ky; let tx${i} = apx${i} + i32(P.pad) - kx;`);
      ok = `av${i} && kok && ty${i} >= 0 && tx${i} >= 0 && ty${i} % s == 0 && tx${i} % s == 0` +
        ` && ty${i} / s < i32(P.oh) && tx${i} / s < i32(P.ow)`;
      idx = `((an${i} * P.oh + u32(ty${i} / s)) * P.ow + u32(tx${i} / s)) * P.kin + sk`;
    }
    st.push(`let ok${i} = ${ok};`, `As[ka][ra + ${16 * i}u] = select(0.0, A[select(0u, ${idx}, ok${i})], ok${i});`);
  }
  if (c.bLayout === "nk") {
    for (const i of bRows) {
      const col = `col0 + ra + ${16 * i}u`;
      st.push(
        `let bok${i} = kok && ${col} < P.cols;`,
        `Bs[ka][(ra + ${16 * i}u) / 4u][(ra + ${16 * i}u) % 4u] = ` +
          `select(0.0, Bm[select(0u, (sseg * P.cols + ${col}) * P.kin + sk, bok${i})], bok${i});`,
      );
    }
  } else {
    st.push(...stageRowMajorB(c, TN, "k0"));
  }
  return { pre: pre.join("\n  "), stage: `{\n      ${st.join("\n      ")}\n    }` };
}

/** B rows contiguous in the columns, tile rows `base` + 0..15: vec4 loads when whole, else scalar. */
function stageRowMajorB(c: GemmConfig, TN: number, base: string): string[] {
  const st: string[] = [];
  if (vec4B(c)) {
    const groups = TN / 4;
    for (const i of range((TILE_K * groups) / 256)) {
      st.push(
        `let bg${i} = (tid + ${256 * i}u) % ${groups}u; let br${i} = (tid + ${256 * i}u) / ${groups}u;` +
          ` let bok${i} = k0 + br${i} < red;`,
        `Bs[br${i}][bg${i}] = select(vec4<f32>(0.0), Bm[select(0u, ((${base} + br${i}) * P.cols + col0) / 4u + bg${i}, bok${i})], bok${i});`,
      );
    }
  } else {
    for (const i of range((TILE_K * TN) / 256)) {
      st.push(
        `let bc${i} = (tid + ${256 * i}u) % ${TN}u; let br${i} = (tid + ${256 * i}u) / ${TN}u;` +
          ` let bok${i} = k0 + br${i} < red && col0 + bc${i} < P.cols;`,
        `Bs[br${i}][bc${i} / 4u][bc${i} % 4u] = select(0.0, Bm[select(0u, (${base} + br${i}) * P.cols + col0 + bc${i}, bok${i})], bok${i});`,
      );
    }
  }
  return st;
}

/**
 * wgrad staging: rows are (tap, input channel), the reduction runs over output pixels m. Thread tid takes
 * pixel m0 + k0 + tid / 16 and rows tid % 16 + 16·i: 16 neighbouring channels of one pixel per load.
 */
function wgradStaging(c: GemmConfig, TM: number, TN: number): { pre: string; stage: string } {
  const rows = range(TM / 16);
  const pre = [
    "let ka = tid / 16u; let ra = tid % 16u;",
    ...rows.map((i) =>
      `let ar${i} = row0 + ra + ${16 * i}u; let av${i} = ar${i} < P.rows;` +
      (c.dense ? "" : ` let asg${i} = ar${i} / P.cin; let aci${i} = ar${i} % P.cin;` +
        ` let aky${i} = i32(asg${i} / P.kw); let akx${i} = i32(asg${i} % P.kw);`)
    ),
  ];
  const st: string[] = ["let mk = k0 + ka; let mok = mk < red; let m = m0 + mk;"];
  if (!c.dense) {
    st.push(
      "let n = m / (P.oh * P.ow); let oy = i32((m / P.ow) % P.oh); let ox = i32(m % P.ow);",
      "let iy0 = oy * i32(P.stride) - i32(P.pad); let ix0 = ox * i32(P.stride) - i32(P.pad);",
    );
  }
  for (const i of rows) {
    let ok: string, idx: string;
    if (c.dense) {
      ok = `av${i} && mok`;
      idx = `m * P.rows + ar${i}`;
    } else {
      st.push(`let yy${i} = iy0 + aky${i}; let xx${i} = ix0 + akx${i};`);
      ok = `av${i} && mok && yy${i} >= 0 && yy${i} < i32(P.ih) && xx${i} >= 0 && xx${i} < i32(P.iw)`;
      idx = `((n * P.ih + u32(yy${i})) * P.iw + u32(xx${i})) * P.cin + aci${i}`;
    }
    st.push(`let ok${i} = ${ok};`, `As[ka][ra + ${16 * i}u] = select(0.0, A[select(0u, ${idx}, ok${i})], ok${i});`);
  }
  st.push(...stageRowMajorB(c, TN, "m0 + k0"));
  return { pre: pre.join("\n  "), stage: `{\n      ${st.join("\n      ")}\n    }` };
}
