import {
  convDgrad,
  convDgradRef,
  convForward,
  convForwardRef,
  type ConvGeom,
  convOutSize,
  convWgrad,
  convWgradRef,
  type GemmShape,
  matmul,
  matmulRef,
  matmulTA,
} from "../../src/kernels/gemm.ts";
import {
  gemmEdge,
  gemmGrid,
  gemmSpec,
  type GemmTile,
  gemmTileSize,
  gemmWorkgroup,
} from "../../src/kernels/wgsl/gemm.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import assert from "node:assert/strict";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce, skipTiled } from "../util.ts";

// f32 sums of K products of N(0,1) values: errors grow like √K·2^-24 of the terms' scale.
const tolFor = (k: number) => ({ rtol: 1e-5, atol: 2e-6 * Math.sqrt(k) * 4 });

const GEOMS: [string, ConvGeom][] = [
  ["stem 7×7/2 p3, cin 3", { nb: 2, ih: 19, iw: 17, cin: 3, cout: 8, kh: 7, kw: 7, stride: 2, pad: 3 }],
  ["3×3/1 p1", { nb: 2, ih: 9, iw: 7, cin: 12, cout: 20, kh: 3, kw: 3, stride: 1, pad: 1 }],
  ["3×3/2 p1", { nb: 1, ih: 10, iw: 9, cin: 8, cout: 16, kh: 3, kw: 3, stride: 2, pad: 1 }],
  ["1×1/2 downsample", { nb: 2, ih: 8, iw: 8, cin: 16, cout: 32, kh: 1, kw: 1, stride: 2, pad: 0 }],
  ["1×1/1 dense", { nb: 3, ih: 5, iw: 7, cin: 24, cout: 36, kh: 1, kw: 1, stride: 1, pad: 0 }],
  // whole column tiles (64 / 128 channels): the tiled kernels' vec4 B path, no column edge
  ["3×3/2 p1 wide", { nb: 2, ih: 6, iw: 5, cin: 64, cout: 128, kh: 3, kw: 3, stride: 2, pad: 1 }],
  ["1×1/1 dense wide", { nb: 1, ih: 9, iw: 5, cin: 128, cout: 64, kh: 1, kw: 1, stride: 1, pad: 0 }],
];

for (const shape of ["register", "tiled"] as GemmShape[]) {
  for (const [name, g] of GEOMS) {
    Deno.test({
      name: `conv ${name} (${shape}): forward, input gradient and weight gradient match float64`,
      ...GPU_TEST,
      ignore: skipTiled(shape),
      async fn() {
        const gp = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const [oh, ow] = convOutSize(g);
        const nx = g.nb * g.ih * g.iw * g.cin, nw = g.kh * g.kw * g.cin * g.cout, ny = g.nb * oh * ow * g.cout;
        const xv = rng.normals(nx), wv = rng.normals(nw), dyv = rng.normals(ny), bv = rng.normals(g.cout);
        const resv = rng.normals(ny), dres = rng.normals(nx);
        const x = Tensor.from(gp, [nx], xv), w = Tensor.from(gp, [nw], wv), dy = Tensor.from(gp, [ny], dyv);
        const bias = Tensor.from(gp, [g.cout], bv), res = Tensor.from(gp, [ny], resv);
        const sv = rng.normals(g.cout), hv = rng.normals(g.cout);
        const scl = Tensor.from(gp, [g.cout], sv), shf = Tensor.from(gp, [g.cout], hv);
        const dxRes = Tensor.from(gp, [nx], dres);
        const y = poisoned(gp, [ny]), yFused = poisoned(gp, [ny]), dx = poisoned(gp, [nx]);
        const dxAdd = poisoned(gp, [nx]), dw = poisoned(gp, [nw]), dw1 = poisoned(gp, [nw]);
        const tile = { shape };
        const wg = await convWgrad(gp, x, dy, dw, g, { tile, splits: 3 });
        const wg1 = await convWgrad(gp, x, dy, dw1, g, { tile, splits: 1 });
        await runOnce(gp, [
          await convForward(gp, x, w, y, g, { tile }),
          await convForward(gp, x, w, yFused, g, { tile, bias, affine: [scl, shf], residual: res, relu: true }),
          await convDgrad(gp, dy, w, dx, g, { tile }),
          await convDgrad(gp, dy, w, dxAdd, g, { tile, residual: dxRes }),
          ...wg.dispatches,
          ...wg1.dispatches,
        ]);
        const tag = `${name} ${shape} seed=${seed}`;
        const K = g.kh * g.kw * g.cin;
        const yRef = convForwardRef(xv, wv, g);
        assertClose(await readF64(y), yRef, tolFor(K), `forward ${tag}`);
        const fused = yRef.map((v, i) => Math.max((v + bv[i % g.cout]) * sv[i % g.cout] + hv[i % g.cout] + resv[i], 0));
        const fusedTol = { rtol: 1e-5, atol: 2e-6 * Math.sqrt(K) * 4 * Math.max(...Array.from(sv, Math.abs)) };
        assertClose(await readF64(yFused), fused, fusedTol, `forward+bias+scale/shift+residual+relu ${tag}`);
        const dxRef = convDgradRef(dyv, wv, g);
        assertClose(await readF64(dx), dxRef, tolFor(g.kh * g.kw * g.cout), `dgrad ${tag}`);
        assertClose(
          await readF64(dxAdd),
          dxRef.map((v, i) => v + dres[i]),
          tolFor(g.kh * g.kw * g.cout),
          `dgrad+add ${tag}`,
        );
        const dwRef = convWgradRef(xv, dyv, g);
        assertClose(await readF64(dw), dwRef, tolFor(g.nb * oh * ow), `wgrad split 3 ${tag}`);
        assertClose(await readF64(dw1), dwRef, tolFor(g.nb * oh * ow), `wgrad split 1 ${tag}`);
        for (const t of [x, w, dy, bias, scl, shf, res, dxRes, y, yFused, dx, dxAdd, dw, dw1, ...wg.owned]) {
          t.dispose();
        }
      },
    });
  }

  Deno.test({
    name: `matmul (${shape}): A·B, A·Bᵀ with bias, Aᵀ·B on odd shapes match float64`,
    ...GPU_TEST,
    ignore: skipTiled(shape),
    async fn() {
      const gp = await gpu();
      const seed = freshSeed(), rng = new Rng(seed);
      const [M, K, N] = [37, 29, 23];
      const av = rng.normals(M * K), bv = rng.normals(K * N), btv = rng.normals(N * K), biasv = rng.normals(N);
      const cv = rng.normals(M * N);
      const a = Tensor.from(gp, [M, K], av), b = Tensor.from(gp, [K, N], bv), bt = Tensor.from(gp, [N, K], btv);
      const bias = Tensor.from(gp, [N], biasv), c = Tensor.from(gp, [M, N], cv);
      const ab = poisoned(gp, [M, N]), abt = poisoned(gp, [M, N]), atc = poisoned(gp, [K, N]);
      const ta = await matmulTA(gp, a, c, atc, M, K, N, { tile: { shape } });
      await runOnce(gp, [
        await matmul(gp, a, b, ab, M, K, N, { tile: { shape } }),
        await matmul(gp, a, bt, abt, M, K, N, { transB: true, bias, tile: { shape } }),
        ...ta.dispatches,
      ]);
      const tag = `${shape} seed=${seed}`;
      assertClose(await readF64(ab), matmulRef(av, bv, M, K, N), tolFor(K), `A·B ${tag}`);
      const abtRef = matmulRef(av, btv, M, K, N, true).map((v, i) => v + biasv[i % N]);
      assertClose(await readF64(abt), abtRef, tolFor(K), `A·Bᵀ+bias ${tag}`);
      // Aᵀ·C: transpose A on the host for the reference
      const at = Float64Array.from({ length: K * M }, (_, i) => av[(i % M) * K + Math.floor(i / M)]);
      assertClose(await readF64(atc), matmulRef(at, cv, K, M, N), tolFor(M), `Aᵀ·B ${tag}`);
      for (const t of [a, b, bt, bias, c, ab, abt, atc, ...ta.owned]) t.dispose();
    },
  });
}

Deno.test("gemm geometry: the grid covers every output with whole tiles, the kernels use the same tile", () => {
  const tiles: GemmTile[] = [];
  for (const shape of ["register", "tiled"] as GemmShape[]) {
    for (const rm of [1, 2, 8]) for (const v of [1, 2, 4]) tiles.push({ shape, rm, v });
  }
  for (const t of tiles) {
    const side = gemmWorkgroup(t.shape), size = gemmTileSize(t);
    assert.deepEqual(size, { rows: side * t.rm, cols: side * 4 * t.v });
    for (const [rows, cols] of [[1, 1], [37, 23], [256, 128], [257, 129], [12544, 64]]) {
      const [gx, gy, gz] = gemmGrid(t, rows, cols, 3);
      assert(gx * size.cols >= cols && (gx - 1) * size.cols < cols, `${JSON.stringify(t)} x for ${cols}`);
      assert(gy * size.rows >= rows && (gy - 1) * size.rows < rows, `${JSON.stringify(t)} y for ${rows}`);
      assert.equal(gz, 3);
    }
    // whole column groups: 4V per invocation (register), the workgroup's tile width (tiled)
    const whole = t.shape === "register" ? 4 * t.v : size.cols;
    assert.equal(gemmEdge(t, 4 * whole), false);
    assert.equal(gemmEdge(t, 4 * whole + 1), true);
    const spec = gemmSpec({ ...t, mode: "fwd", bLayout: "kn", dense: true, edge: false, epilogue: {} });
    assert(spec.body.includes(`@workgroup_size(${side}, ${side})`), `${JSON.stringify(t)} workgroup size`);
    if (t.shape === "tiled") {
      assert(spec.body.includes(`let row0 = wid.y * ${size.rows}u; let col0 = wid.x * ${size.cols}u;`));
    } else {
      assert(spec.body.includes(`let c0 = g.x * ${4 * t.v}u;`) && spec.body.includes(`let r0 = g.y * ${t.rm}u;`));
    }
  }
});
