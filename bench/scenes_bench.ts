/**
 * `deno bench` for the scene cache (`data.scenes.cache`, src/data/scene_cache.ts): rendering a built-in
 * scene against reading it back, at gpu-small's 192 px and cpu-tiny's 96. The cache is filled before the
 * timing; the files stay in the OS page cache, as they do for the later epochs and runs that read them.
 */
import { SceneCache, SceneGenerator } from "../src/data/mod.ts";

const dir = await Deno.makeTempDir({ prefix: "plrc-scene-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
for (const size of [192, 96]) {
  const gen = new SceneGenerator(0, { size, classes: 6 });
  const cache = new SceneCache(dir, gen);
  for (let i = 0; i < 32; i++) await cache.scene(i);
  let i = 0, j = 0;
  Deno.bench({
    name: `render scene ${size} px`,
    group: `scene ${size}`,
    baseline: true,
    fn: () => {
      gen.scene(i++ % 32);
    },
  });
  Deno.bench({
    name: `read cached scene ${size} px`,
    group: `scene ${size}`,
    fn: async () => {
      await cache.scene(j++ % 32);
    },
  });
}
