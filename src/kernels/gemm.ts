/**
 * Host side of the GEMM / implicit-GEMM convolution template: geometry, tile choice, split-K, and the
 * float64 references.
 *
 * Layouts: activations NHWC, convolution weights [KH, KW, Cin, Cout] (HWIO; torchvision's OIHW is
 * transposed at import/export), dense matrices row-major.
 *
 * @module
 */
import {
  type BLayout,
  type Epilogue,
  type GemmConfig,
  gemmEdge,
  gemmGrid,
  type GemmMode,
  type GemmShape,
  gemmSpec,
  type GemmTile,
} from "./wgsl/gemm.ts";
import type { Bound } from "../gpu/bound.ts";
import type { Gpu } from "../gpu/device.ts";
import { bind, type Dispatch } from "../gpu/kernel.ts";
import { Tensor } from "../gpu/tensor.ts";
import { reduceAxis } from "./reduce.ts";

export type { BLayout, Epilogue, GemmMode, GemmShape, GemmTile };

/** A 2-D convolution's geometry (no dilation, no groups, no bias). */
export interface ConvGeom {
  /** Batch size. */
  nb: number;
  /** Input height. */
  ih: number;
  /** Input width. */
  iw: number;
  /** Input channels. */
  cin: number;
  /** Output channels. */
  cout: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Stride, the same along both axes. */
  stride: number;
  /** Zero padding on every side. */
  pad: number;
}

/** Output height and width of `g`. */
export function convOutSize(g: ConvGeom): [number, number] {
  return [Math.floor((g.ih + 2 * g.pad - g.kh) / g.stride) + 1, Math.floor((g.iw + 2 * g.pad - g.kw) / g.stride) + 1];
}

/** Multiply-adds ×2 of one convolution forward (the backward passes cost the same each). */
export function convFlops(g: ConvGeom): number {
  const [oh, ow] = convOutSize(g);
  return 2 * g.nb * oh * ow * g.cout * g.kh * g.kw * g.cin;
}

/** Tile choice per adapter: register blocks on CPU adapters, workgroup-memory tiles on GPUs. */
export function chooseTile(gpu: Gpu, _rows: number, cols: number, override?: Partial<GemmTile>): GemmTile {
  const shape = override?.shape ?? (gpu.summary.adapterClass === "cpu" ? "register" : "tiled");
  if (shape === "register") {
    // 8 × 16 per invocation measured best on lavapipe; narrow outputs use 8 × 8 or 8 × 4
    const v = cols >= 16 ? 4 : cols >= 8 ? 2 : 1;
    return { shape, rm: override?.rm ?? 8, v: override?.v ?? v };
  }
  return { shape, rm: override?.rm ?? 8, v: override?.v ?? (cols >= 128 ? 2 : 1) };
}

function params(g: ConvGeom, rows: number, cols: number, kin: number, extra: Record<string, number> = {}) {
  const [oh, ow] = convOutSize(g);
  return {
    rows,
    cols,
    kin,
    segs: g.kh * g.kw,
    nb: g.nb,
    ih: g.ih,
    iw: g.iw,
    oh,
    ow,
    kw: g.kw,
    stride: g.stride,
    pad: g.pad,
    cin: g.cin,
    mred: 0,
    chunk: 0,
    ...extra,
  };
}

const isDense = (g: ConvGeom) => g.kh === 1 && g.kw === 1 && g.stride === 1 && g.pad === 0;

function config(mode: GemmMode, tile: GemmTile, cols: number, g: ConvGeom, e: Epilogue, b: BLayout): GemmConfig {
  return {
    mode,
    shape: tile.shape,
    rm: tile.rm,
    v: tile.v,
    bLayout: b,
    dense: isDense(g),
    edge: gemmEdge(tile, cols),
    epilogue: e,
  };
}

function extras(e: Epilogue, bias?: Tensor, residual?: Tensor, affine?: [Tensor, Tensor]): Tensor[] {
  const t: Tensor[] = [];
  if (e.bias) t.push(bias!);
  if (e.affine) t.push(...affine!);
  if (e.residual) t.push(residual!);
  return t;
}

/** Options of the forward-type products. */
export interface ProductOptions {
  /** Per-output-channel bias, added first. */
  bias?: Tensor;
  /** Per-output-channel [scale, shift], applied after the bias. */
  affine?: [Tensor, Tensor];
  /** A tensor of the output's shape added before the ReLU (a residual connection). */
  residual?: Tensor;
  /** Apply a ReLU last. */
  relu?: boolean;
  /** Overrides of the tile the adapter class would choose. */
  tile?: Partial<GemmTile>;
}

function checkSize(t: Tensor, n: number, what: string): void {
  if (t.numel !== n) throw new Error(`${what}: "${t.name}" has ${t.numel} elements, expected ${n}`);
}

/** `out[n,oy,ox,co] = Σ x[n, oy·s−p+ky, ox·s−p+kx, ci] · w[ky,kx,ci,co]` (+ bias, residual, ReLU). */
export function convForward(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  out: Tensor,
  g: ConvGeom,
  o: ProductOptions = {},
): Promise<Dispatch> {
  const [oh, ow] = convOutSize(g);
  const rows = g.nb * oh * ow, cols = g.cout;
  checkSize(x, g.nb * g.ih * g.iw * g.cin, "conv input");
  checkSize(w, g.kh * g.kw * g.cin * g.cout, "conv weight");
  checkSize(out, rows * cols, "conv output");
  const tile = chooseTile(gpu, rows, cols, o.tile);
  const e = { bias: !!o.bias, affine: !!o.affine, residual: !!o.residual, relu: !!o.relu };
  return bind(
    gpu,
    gemmSpec(config("fwd", tile, cols, g, e, "kn")),
    [x, w, out, ...extras(e, o.bias, o.residual, o.affine)],
    params(g, rows, cols, g.cin),
    gemmGrid(tile, rows, cols),
    "conv_fwd",
  );
}

/** Input gradient of {@link convForward}: `dx = col2im(dy · wᵀ)`, plus `residual` (a gradient to add). */
export function convDgrad(
  gpu: Gpu,
  dy: Tensor,
  w: Tensor,
  dx: Tensor,
  g: ConvGeom,
  o: ProductOptions = {},
): Promise<Dispatch> {
  const [oh, ow] = convOutSize(g);
  const rows = g.nb * g.ih * g.iw, cols = g.cin;
  checkSize(dy, g.nb * oh * ow * g.cout, "conv output gradient");
  checkSize(dx, rows * cols, "conv input gradient");
  const tile = chooseTile(gpu, rows, cols, o.tile);
  const e = { residual: !!o.residual, relu: false };
  return bind(
    gpu,
    gemmSpec(config("dgrad", tile, cols, g, e, "nk")),
    [dy, w, dx, ...extras(e, undefined, o.residual)],
    params(g, rows, cols, g.cout),
    gemmGrid(tile, rows, cols),
    "conv_dgrad",
  );
}

/** Number of reduction splits so that enough workgroups run (CPU adapters need few, GPUs many). */
export function chooseSplits(gpu: Gpu, tile: GemmTile, rows: number, cols: number, red: number): number {
  const [gx, gy] = gemmGrid(tile, rows, cols);
  const want = gpu.summary.adapterClass === "cpu" ? 16 : 264;
  const minChunk = 256;
  return Math.max(1, Math.min(Math.ceil(want / (gx * gy)), Math.floor(red / minChunk), 64));
}

/** Weight gradient of {@link convForward}: `dw[ky,kx,ci,co] = Σ_m im2col(x)[m, (ky,kx,ci)] · dy[m, co]`. */
export async function convWgrad(
  gpu: Gpu,
  x: Tensor,
  dy: Tensor,
  dw: Tensor,
  g: ConvGeom,
  o: { tile?: Partial<GemmTile>; splits?: number } = {},
): Promise<Bound> {
  const [oh, ow] = convOutSize(g);
  const rows = g.kh * g.kw * g.cin, cols = g.cout, red = g.nb * oh * ow;
  checkSize(x, g.nb * g.ih * g.iw * g.cin, "conv input");
  checkSize(dy, red * cols, "conv output gradient");
  checkSize(dw, rows * cols, "conv weight gradient");
  const tile = chooseTile(gpu, rows, cols, o.tile);
  const splits = o.splits ?? chooseSplits(gpu, tile, rows, cols, red);
  const chunk = Math.ceil(red / splits);
  const spec = gemmSpec(config("wgrad", tile, cols, g, {}, "kn"));
  const p = params(g, rows, cols, 0, { mred: red, chunk });
  if (splits === 1) {
    return {
      dispatches: [await bind(gpu, spec, [x, dy, dw], p, gemmGrid(tile, rows, cols), "conv_wgrad")],
      owned: [],
    };
  }
  const partial = Tensor.empty(gpu, [splits, rows, cols], "f32", `${dw.name} split-K partials`);
  const d = await bind(gpu, spec, [x, dy, partial], p, gemmGrid(tile, rows, cols, splits), "conv_wgrad");
  const sum = await reduceAxis(gpu, partial, 0, "sum", dw, false);
  return { dispatches: [d, ...sum.dispatches], owned: [partial] };
}

/** Dense geometry: an [M, K] matrix as a 1×1 convolution over M pixels. */
export function denseGeom(m: number, k: number, n: number): ConvGeom {
  return { nb: 1, ih: 1, iw: m, cin: k, cout: n, kh: 1, kw: 1, stride: 1, pad: 0 };
}

/** `out[M,N] = a[M,K] · b` with b [K,N] (`transB` false) or [N,K] (`transB` true), plus epilogue. */
export function matmul(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  m: number,
  k: number,
  n: number,
  o: ProductOptions & { transB?: boolean } = {},
): Promise<Dispatch> {
  checkSize(a, m * k, "matmul A"), checkSize(b, k * n, "matmul B"), checkSize(out, m * n, "matmul output");
  const g = denseGeom(m, k, n);
  const tile = chooseTile(gpu, m, n, o.tile);
  const e = { bias: !!o.bias, residual: !!o.residual, relu: !!o.relu };
  return bind(
    gpu,
    gemmSpec(config("fwd", tile, n, g, e, o.transB ? "nk" : "kn")),
    [a, b, out, ...extras(e, o.bias, o.residual)],
    params(g, m, n, k),
    gemmGrid(tile, m, n),
    "matmul",
  );
}

/** `out[R,N] = aᵀ · b` with a [M,R], b [M,N] (reduction over M, split as needed). */
export function matmulTA(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  m: number,
  r: number,
  n: number,
  o: { tile?: Partial<GemmTile>; splits?: number } = {},
): Promise<Bound> {
  // Aᵀ·B is the weight gradient of a 1×1 convolution with Cin = R
  return convWgrad(gpu, a, b, out, { ...denseGeom(m, r, n) }, o);
}

// ---------------------------------------------------------------------------------------------------------
// float64 references

/**
 * Visits every (output pixel, kernel tap) pair of `g` that lands inside the input: `o` is the output
 * row's offset (× cout), `xi` the input pixel's offset (× cin), `wi` the tap's weight block (× cin·cout).
 * The three references below are this one loop with different inner products.
 */
function forEachTap(g: ConvGeom, f: (o: number, xi: number, wi: number) => void): void {
  const [oh, ow] = convOutSize(g);
  for (let n = 0; n < g.nb; n++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const o = ((n * oh + oy) * ow + ox) * g.cout;
        for (let ky = 0; ky < g.kh; ky++) {
          const y = oy * g.stride - g.pad + ky;
          if (y < 0 || y >= g.ih) continue;
          for (let kx = 0; kx < g.kw; kx++) {
            const xx = ox * g.stride - g.pad + kx;
            if (xx < 0 || xx >= g.iw) continue;
            f(o, ((n * g.ih + y) * g.iw + xx) * g.cin, (ky * g.kw + kx) * g.cin * g.cout);
          }
        }
      }
    }
  }
}

/** Reference of {@link convForward} (NHWC, HWIO). */
export function convForwardRef(x: ArrayLike<number>, w: ArrayLike<number>, g: ConvGeom): Float64Array {
  const [oh, ow] = convOutSize(g);
  const out = new Float64Array(g.nb * oh * ow * g.cout);
  forEachTap(g, (o, xi, wi) => {
    for (let ci = 0; ci < g.cin; ci++) {
      const xv = x[xi + ci];
      for (let co = 0; co < g.cout; co++) out[o + co] += xv * w[wi + ci * g.cout + co];
    }
  });
  return out;
}

/** Reference input gradient: the adjoint of {@link convForwardRef}. */
export function convDgradRef(dy: ArrayLike<number>, w: ArrayLike<number>, g: ConvGeom): Float64Array {
  const dx = new Float64Array(g.nb * g.ih * g.iw * g.cin);
  forEachTap(g, (o, xi, wi) => {
    for (let ci = 0; ci < g.cin; ci++) {
      let s = 0;
      for (let co = 0; co < g.cout; co++) s += dy[o + co] * w[wi + ci * g.cout + co];
      dx[xi + ci] += s;
    }
  });
  return dx;
}

/** Reference weight gradient of {@link convForwardRef}. */
export function convWgradRef(x: ArrayLike<number>, dy: ArrayLike<number>, g: ConvGeom): Float64Array {
  const dw = new Float64Array(g.kh * g.kw * g.cin * g.cout);
  forEachTap(g, (o, xi, wi) => {
    for (let ci = 0; ci < g.cin; ci++) {
      const xv = x[xi + ci];
      for (let co = 0; co < g.cout; co++) dw[wi + ci * g.cout + co] += xv * dy[o + co];
    }
  });
  return dw;
}

/** Reference of {@link matmul}: a [M,K] · b ([K,N], or [N,K] when transB). */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  transB = false,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += av * (transB ? b[j * k + p] : b[p * n + j]);
    }
  }
  return out;
}
