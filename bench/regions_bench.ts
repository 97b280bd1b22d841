/**
 * `deno bench` for region maps of a folder source (src/data/sources.ts): what a training sample pays for
 * its regions. FH is computed once per image into the masks folder, then every read decodes the label-map
 * PNG (and a user's label map the same way), so the per-sample cost is the PNG read + decode, set here
 * beside computing FH on the same decoded image (what each epoch paid per worker before the maps went to
 * disk) at the decode cache's default short side of 256 px (256×341, as a 4:3 photo).
 */
import { join } from "node:path";
import { felzenszwalb, readLabelMapPng, rgbImage, Rng, writeLabelMapPng } from "../src/data/mod.ts";

const dir = await Deno.makeTempDir({ prefix: "plrc-regions-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const W = 341, H = 256, rng = new Rng(7), img = rgbImage(W, H);
// noisy colour blocks: a photo-like number of FH regions (tens), not one per pixel
for (let y = 0; y < H; y++) {
  for (let x = 0; x < W; x++) {
    const b = (Math.floor(x / 48) * 7 + Math.floor(y / 40) * 3) % 11;
    for (let c = 0; c < 3; c++) img.data[(y * W + x) * 3 + c] = (b * 23 * (c + 1) + rng.next() * 30) % 256;
  }
}
const fh = { scale: 1000, sigma: 0.8, minSize: 466 };
const map = felzenszwalb(img, fh);
const file = join(dir, "map.png");
await writeLabelMapPng(file, map, { method: "fh" });

Deno.bench({
  name: "FH on the decoded image (256×341)",
  group: "regions of one image",
  baseline: true,
  fn: () => {
    felzenszwalb(img, fh);
  },
});
Deno.bench({
  name: "read + decode its label-map PNG",
  group: "regions of one image",
  fn: async () => {
    await readLabelMapPng(file);
  },
});
