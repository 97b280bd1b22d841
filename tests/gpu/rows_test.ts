import * as rows from "../../src/kernels/rows.ts";
import { rowsRef as ref, type RowVariant } from "../../src/kernels/rows.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

// Tolerances against float64 (f32 inputs): exp/log in f32, and f32 row sums whose rounding grows with the
// row length (serial sums in the thread variant), hence an absolute term proportional to cols.
const VARIANTS: RowVariant[] = ["thread", "workgroup"];
// shapes: one row, rows longer than the workgroup, odd sizes, many short rows
const SHAPES: [number, number][] = [[1, 5], [3, 200], [37, 17], [130, 1000]];

for (const variant of VARIANTS) {
  for (const [R, C] of SHAPES) {
    Deno.test({
      name: `row ops (${variant}) match float64 references [${R}×${C}]`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const tag = `${variant} [${R}×${C}] seed=${seed}`;
        const TOL = { rtol: 2e-5, atol: 2e-6 + 1e-7 * C };
        const xv = rng.normals(R * C, 3), dyv = rng.normals(R * C);
        const x = Tensor.from(g, [R, C], xv), dy = Tensor.from(g, [R, C], dyv);

        // softmax forward and backward (backward fed with the f32 GPU output, as in training)
        const y = poisoned(g, [R, C]), dx = poisoned(g, [R, C]);
        await runOnce(g, [await rows.softmax(g, x, y, variant), await rows.softmaxBackward(g, y, dy, dx, variant)]);
        const yv = await readF64(y);
        assertClose(yv, ref.softmax(xv, R, C), TOL, `softmax ${tag}`);
        assertClose(await readF64(dx), ref.softmaxBackward(yv, dyv, R, C), TOL, `softmax backward ${tag}`);

        // log-softmax
        const ly = poisoned(g, [R, C]), ldx = poisoned(g, [R, C]);
        await runOnce(g, [
          await rows.logSoftmax(g, x, ly, variant),
          await rows.logSoftmaxBackward(g, ly, dy, ldx, variant),
        ]);
        const lyv = await readF64(ly);
        assertClose(lyv, ref.logSoftmax(xv, R, C), TOL, `log_softmax ${tag}`);
        assertClose(await readF64(ldx), ref.logSoftmaxBackward(lyv, dyv, R, C), TOL, `log_softmax backward ${tag}`);

        // L2 normalisation (one row scaled tiny, one huge)
        const nv = Float32Array.from(xv);
        for (let j = 0; j < C; j++) nv[j] *= 1e-3, nv[(R - 1) * C + j] *= R > 1 ? 1e3 : 1;
        const nx = Tensor.from(g, [R, C], nv);
        const ny = poisoned(g, [R, C]), norm = poisoned(g, [R]), ndx = poisoned(g, [R, C]);
        await runOnce(g, [
          await rows.l2Normalize(g, nx, ny, norm, undefined, variant),
          await rows.l2NormalizeBackward(g, ny, norm, dy, ndx, undefined, variant),
        ]);
        const r = ref.l2Normalize(nv, R, C);
        const nyv = await readF64(ny), normv = await readF64(norm);
        assertClose(nyv, r.y, TOL, `l2_normalize ${tag}`);
        assertClose(normv, r.norm, TOL, `l2_normalize norm ${tag}`);
        // dx = (dy − y·(y·dy)) / ‖x‖: the f32 rounding of y and of the dot is divided by the row's norm, so
        // each row's bound grows with ‖dy‖/‖x‖ (the tiny row's is ~300; a fixed bound failed 1 seed in ~100)
        const rowBound = Array.from({ length: R }, (_, r) => {
          let d = 0;
          for (let j = 0; j < C; j++) d += dyv[r * C + j] ** 2;
          return 4 * 1.19e-7 * Math.sqrt(d) / normv[r];
        });
        assertClose(await readF64(ndx), ref.l2NormalizeBackward(nyv, normv, dyv, R, C), {
          rtol: 2e-5,
          atol: Float64Array.from({ length: R * C }, (_, i) => 1e-5 + 1e-7 * C + rowBound[Math.floor(i / C)]),
        }, `l2_normalize backward ${tag}`);

        // cross-entropy with class indices
        const tv = Int32Array.from({ length: R }, () => rng.int(C));
        const dlv = rng.normals(R);
        const t = Tensor.from(g, [R], tv, "i32"), dl = Tensor.from(g, [R], dlv);
        const loss = poisoned(g, [R]), lse = poisoned(g, [R]), cdx = poisoned(g, [R, C]);
        await runOnce(g, [
          await rows.crossEntropy(g, x, t, loss, lse, variant),
          await rows.crossEntropyBackward(g, x, lse, t, dl, cdx, variant),
        ]);
        const ce = ref.crossEntropy(xv, tv, R, C);
        assertClose(await readF64(loss), ce.loss, TOL, `cross_entropy ${tag}`);
        assertClose(await readF64(lse), ce.lse, TOL, `cross_entropy lse ${tag}`);
        assertClose(
          await readF64(cdx),
          ref.crossEntropyBackward(xv, tv, dlv, R, C),
          TOL,
          `cross_entropy backward ${tag}`,
        );

        // cross-entropy with soft targets (unnormalised rows on purpose: Σt ≠ 1 is allowed)
        const sv = Float32Array.from({ length: R * C }, () => rng.next());
        const st = Tensor.from(g, [R, C], sv);
        const sloss = poisoned(g, [R]), slse = poisoned(g, [R]), sdx = poisoned(g, [R, C]);
        await runOnce(g, [
          await rows.softCrossEntropy(g, x, st, sloss, slse, variant),
          await rows.softCrossEntropyBackward(g, x, slse, st, dl, sdx, variant),
        ]);
        const sce = ref.softCrossEntropy(xv, sv, R, C);
        assertClose(await readF64(sloss), sce.loss, { rtol: 2e-5, atol: 1e-4 }, `soft_cross_entropy ${tag}`);
        assertClose(
          await readF64(sdx),
          ref.softCrossEntropyBackward(xv, sv, dlv, R, C),
          TOL,
          `soft_cross_entropy backward ${tag}`,
        );

        for (const tt of [x, dy, y, dx, ly, ldx, nx, ny, norm, ndx, t, dl, loss, lse, cdx, st, sloss, slse, sdx]) {
          tt.dispose();
        }
      },
    });
  }
}
