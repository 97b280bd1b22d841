/** The scene cache: the same bytes as rendering, read back once written, and robust to bad files. */
import assert from "node:assert/strict";
import { decodeScene, encodeScene, SceneCache } from "../../src/data/scene_cache.ts";
import { SceneGenerator } from "../../src/data/scenes.ts";
import { scenesSource, sourceFromSpec } from "../../src/data/sources.ts";

Deno.test("a cached scenes source serves the rendered bytes, from the cache once written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "plrc-scenes-" });
  try {
    const o = { count: 6, size: 48, classes: 4, seed: 3 };
    const plain = scenesSource(o, { kind: "gt" });
    const cached = scenesSource({ ...o, cache: dir }, { kind: "gt" });
    assert.equal(cached.spec?.kind === "scenes" && cached.spec.cache, dir, "workers rebuild it with the cache");
    const rebuilt = sourceFromSpec(cached.spec!);
    assert.match(rebuilt.description, /cached in /);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < o.count; i++) {
        const a = await plain.get(i), b = await (round ? rebuilt : cached).get(i);
        assert.deepEqual(b.image.data, a.image.data, `round ${round} scene ${i} image`);
        assert.deepEqual(b.regions!.data, a.regions!.data, `round ${round} scene ${i} ground-truth regions`);
      }
    }
    const cache = new SceneCache(dir, new SceneGenerator(o.seed, { size: o.size, classes: o.classes }));
    const files = [...Deno.readDirSync(cache.dir)].map((e) => e.name).sort();
    assert.deepEqual(files, [0, 1, 2, 3, 4, 5].map((i) => `${i}.scene`).sort(), "one file per scene, no temporaries");

    // a kept file is read, not rendered again: a valid file with other bytes comes back as stored
    const gen = new SceneGenerator(o.seed, { size: o.size, classes: o.classes });
    const s0 = gen.scene(0);
    const other = { image: { ...s0.image, data: s0.image.data.map((v) => 255 - v) }, instanceMap: s0.instanceMap };
    await Deno.writeFile(`${cache.dir}/0.scene`, encodeScene(other)!);
    assert.deepEqual((await cache.scene(0)).image.data, other.image.data);

    // a truncated or foreign file is rendered again and replaced
    await Deno.writeFile(`${cache.dir}/1.scene`, new Uint8Array(100));
    assert.deepEqual((await cache.scene(1)).image.data, gen.scene(1).image.data);
    assert.deepEqual(
      decodeScene(await Deno.readFile(`${cache.dir}/1.scene`), o.size)!.image.data,
      gen.scene(1).image.data,
    );

    // another generator (other seed) keeps its scenes apart
    const cache2 = new SceneCache(dir, new SceneGenerator(o.seed + 1, { size: o.size, classes: o.classes }));
    assert.notEqual(cache2.dir, cache.dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scene files: encode/decode round trip; wrong size, magic or instance ids are refused", () => {
  const s = new SceneGenerator(9, { size: 40, classes: 3 }).scene(2);
  const bytes = encodeScene(s)!;
  const back = decodeScene(bytes, 40)!;
  assert.deepEqual(back.image.data, s.image.data);
  assert.deepEqual(back.instanceMap.data, s.instanceMap.data);
  assert.equal(decodeScene(bytes, 48), null, "another size");
  assert.equal(decodeScene(bytes.subarray(0, bytes.length - 1), 40), null, "truncated");
  const foreign = bytes.slice();
  foreign[0] = 0;
  assert.equal(decodeScene(foreign, 40), null, "not a scene file");
  const many = { image: s.image, instanceMap: { ...s.instanceMap, data: s.instanceMap.data.map(() => 300) } };
  assert.equal(encodeScene(many), null, "instance ids over a byte are not cached");
});
