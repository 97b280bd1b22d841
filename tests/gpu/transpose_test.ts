import { transpose, transposeRef, type TransposeVariant } from "../../src/kernels/transpose.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { assertClose, freshSeed, gpu, GPU_TEST, poisoned, readF64, Rng, runOnce } from "../util.ts";

for (const variant of ["naive", "tiled"] as TransposeVariant[]) {
  for (const [B, R, C] of [[1, 1, 1], [1, 5, 3], [3, 17, 33], [2, 64, 48]]) {
    Deno.test({
      name: `transpose (${variant}) [${B}×${R}×${C}] is exact, and its backward restores the input`,
      ...GPU_TEST,
      async fn() {
        const g = await gpu();
        const seed = freshSeed(), rng = new Rng(seed);
        const xv = rng.normals(B * R * C);
        const x = Tensor.from(g, [B, R, C], xv);
        const y = poisoned(g, [B, C, R]), back = poisoned(g, [B, R, C]);
        await runOnce(g, [await transpose(g, x, y, variant), await transpose(g, y, back, variant)]);
        assertClose(await readF64(y), transposeRef(xv, B, R, C), { rtol: 0, atol: 0 }, `transpose seed=${seed}`);
        assertClose(await readF64(back), xv, { rtol: 0, atol: 0 }, `transpose backward seed=${seed}`);
        for (const t of [x, y, back]) t.dispose();
      },
    });
  }
}
