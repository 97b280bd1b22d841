import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToF32,
  f32ToF16Bits,
  readSafetensors,
  SafetensorsError,
  type StInput,
  toFloat32,
  toInt32,
  writeSafetensors,
} from "../../src/io/safetensors.ts";

/** Builds a file from a raw header string and a data buffer (no padding). */
function rawFile(header: string, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function file(header: unknown, dataLen: number): Uint8Array {
  return rawFile(JSON.stringify(header), new Uint8Array(dataLen));
}

function roundTrip(
  tensors: Record<string, StInput>,
  metadata?: Record<string, string>,
) {
  return decodeSafetensors(encodeSafetensors(tensors, metadata));
}

Deno.test("f16: exact values, rounding, subnormals, inf, nan", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [65504, 0x7bff], // largest finite
    [65519.99, 0x7bff],
    [65520, 0x7c00], // halfway to 65536 rounds to even = overflow
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [1 + 2 ** -11, 0x3c00], // tie -> even mantissa (0)
    [1 + 3 * 2 ** -11, 0x3c02], // tie -> even mantissa (2)
    [1 + 2 ** -11 + 2 ** -30, 0x3c01], // just above the tie
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie -> 0
    [3 * 2 ** -25, 0x0002], // tie -> 2
    [2 ** -25 + 2 ** -40, 0x0001],
    [2 ** -14 - 2 ** -25, 0x0400], // top subnormal tie carries into normal
    [-(1023 * 2 ** -24), 0x83ff],
  ];
  for (const [x, bits] of cases) {
    assert.equal(f32ToF16Bits(x), bits, `f32ToF16Bits(${x})`);
  }
  assert.equal(f32ToF16Bits(NaN), 0x7e00);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToF32(0xfc01)));
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
});

Deno.test("f16: every non-NaN bit pattern round-trips", () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToF16Bits(x), h);
  }
});

Deno.test("f16: agrees with Math.f16round on random doubles", () => {
  // Deterministic LCG so a failure is reproducible.
  let s = 12345;
  const rand = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 20000; i++) {
    const x = (rand() - 0.5) * 2 ** (rand() * 44 - 28);
    assert.equal(f16BitsToF32(f32ToF16Bits(x)), Math.f16round(x), `x=${x}`);
  }
});

Deno.test("round trip F32 with exact values and metadata", () => {
  const data = new Float32Array([1.5, -2.25, 3e-38, 1e30, 0, -0]);
  const meta = { format: "pt", note: "héllo ✓" };
  const { tensors, metadata } = roundTrip(
    { w: { dtype: "F32", shape: [2, 3], data } },
    meta,
  );
  assert.deepEqual(metadata, meta);
  const t = tensors.get("w")!;
  assert.equal(t.dtype, "F32");
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.bytes.length, 24);
  assert.deepEqual(toFloat32(t), data);
  // Bytes are its own aligned copy, safe to wrap directly.
  assert.equal(t.bytes.byteOffset, 0);
  assert.deepEqual(new Float32Array(t.bytes.buffer), data);
});

Deno.test("round trip F16 from Float32Array and raw bits", () => {
  const src = new Float32Array([1, 1 + 2 ** -11, 65520, 2 ** -24, -Infinity]);
  const { tensors } = roundTrip({
    h: { dtype: "F16", shape: [5], data: src },
    r: { dtype: "F16", shape: [2], data: new Uint16Array([0x3c01, 0x0200]) },
  });
  const h = tensors.get("h")!;
  assert.deepEqual(
    Array.from(new Uint16Array(h.bytes.buffer)),
    [0x3c00, 0x3c00, 0x7c00, 0x0001, 0xfc00],
  );
  assert.deepEqual(
    Array.from(toFloat32(h)),
    [1, 1, Infinity, 2 ** -24, -Infinity],
  );
  assert.deepEqual(
    Array.from(toFloat32(tensors.get("r")!)),
    [1 + 2 ** -10, 2 ** -15],
  );
});

Deno.test("round trip BF16 from Float32Array", () => {
  const src = new Float32Array([1, -3.5, 1e-3, 1 + 3 * 2 ** -8]);
  const { tensors } = roundTrip({
    b: { dtype: "BF16", shape: [4], data: src },
  });
  const b = tensors.get("b")!;
  // 1e-3 is 0x3a83126f: truncates; 1 + 3 * 2^-8 is a tie that goes to even.
  assert.deepEqual(
    Array.from(new Uint16Array(b.bytes.buffer)),
    [0x3f80, 0xc060, 0x3a83, 0x3f82],
  );
  assert.deepEqual(
    Array.from(toFloat32(b)),
    [1, -3.5, 0.00099945068359375, 1.015625],
  );
});

Deno.test("round trip I64 (negative, > 2^32) and toInt32 range check", () => {
  const data = new BigInt64Array([-1n, 2n ** 40n + 7n, -(2n ** 62n), 5n]);
  const { tensors } = roundTrip({ i: { dtype: "I64", shape: [4], data } });
  const t = tensors.get("i")!;
  assert.deepEqual(new BigInt64Array(t.bytes.buffer), data);
  assert.deepEqual(Array.from(toFloat32(t)), [-1, 2 ** 40, -(2 ** 62), 5]);
  assert.throws(() => toInt32(t), /out of int32 range/);

  const small = roundTrip({
    i: { dtype: "I64", shape: [3], data: new BigInt64Array([-7n, 0n, 9n]) },
  }).tensors.get("i")!;
  assert.deepEqual(toInt32(small), new Int32Array([-7, 0, 9]));
});

Deno.test("round trip F64, other ints, 0-d and empty tensors", () => {
  const f64 = new Float64Array([Math.PI, -1e-300, 1e300]);
  const { tensors, metadata } = roundTrip({
    d: { dtype: "F64", shape: [3], data: f64 },
    n: { dtype: "I64", shape: [], data: new BigInt64Array([42n]) },
    e: { dtype: "F32", shape: [0], data: new Float32Array(0) },
    z: { dtype: "F32", shape: [4, 0, 2], data: new Float32Array(0) },
    i32: { dtype: "I32", shape: [2], data: new Int32Array([-5, 2 ** 31 - 1]) },
    i16: { dtype: "I16", shape: [1], data: new Int16Array([-300]) },
    i8: { dtype: "I8", shape: [1], data: new Int8Array([-128]) },
    u8: { dtype: "U8", shape: [2], data: new Uint8Array([255, 1]) },
  });
  assert.deepEqual(metadata, {});
  assert.deepEqual(new Float64Array(tensors.get("d")!.bytes.buffer), f64);
  assert.deepEqual(
    toFloat32(tensors.get("d")!),
    new Float32Array([Math.PI, -0, Infinity]),
  );
  const n = tensors.get("n")!;
  assert.deepEqual(n.shape, []);
  assert.deepEqual(toInt32(n), new Int32Array([42]));
  assert.deepEqual(tensors.get("e")!.shape, [0]);
  assert.equal(tensors.get("e")!.bytes.length, 0);
  assert.deepEqual(tensors.get("z")!.shape, [4, 0, 2]);
  assert.deepEqual(
    toInt32(tensors.get("i32")!),
    new Int32Array([-5, 2 ** 31 - 1]),
  );
  assert.deepEqual(toInt32(tensors.get("i16")!), new Int32Array([-300]));
  assert.deepEqual(toInt32(tensors.get("i8")!), new Int32Array([-128]));
  assert.deepEqual(toInt32(tensors.get("u8")!), new Int32Array([255, 1]));
  assert.throws(() => toInt32(tensors.get("d")!), /not an integer dtype/);
});

Deno.test("encoder: padded header, aligned deterministic layout", () => {
  const tensors: Record<string, StInput> = {
    b: { dtype: "F16", shape: [1], data: new Uint16Array([1]) },
    a: { dtype: "I64", shape: [1], data: new BigInt64Array([1n]) },
    c: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
  };
  const bytes = encodeSafetensors(tensors, { k: "v" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(header, /^\{.*\} *$/);
  const h = JSON.parse(header);
  assert.deepEqual(h.__metadata__, { k: "v" });
  assert.deepEqual(h.a.data_offsets, [0, 8]);
  assert.deepEqual(h.c.data_offsets, [8, 12]);
  assert.deepEqual(h.b.data_offsets, [12, 14]);
  assert.equal(bytes.length, 8 + n + 14);
  // Same input in another key order gives identical bytes.
  const again = encodeSafetensors(
    { c: tensors.c, b: tensors.b, a: tensors.a },
    {
      k: "v",
    },
  );
  assert.deepEqual(again, bytes);
});

Deno.test("encoder rejects bad input", () => {
  assert.throws(
    () =>
      encodeSafetensors({
        x: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) },
      }),
    /"x".*3 elements.*needs 4/,
  );
  assert.throws(
    () =>
      encodeSafetensors({
        x: { dtype: "F32", shape: [2], data: new Float64Array(2) },
      }),
    /"x".*needs a Float32Array, got Float64Array/,
  );
  assert.throws(
    () =>
      encodeSafetensors({
        x: { dtype: "F32", shape: [-1], data: new Float32Array(0) },
      }),
    SafetensorsError,
  );
});

Deno.test("write/read via file is atomic and leaves no temp files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ckpt.safetensors`;
    const w = new Float32Array([0.5, -1, 7]);
    await writeSafetensors(path, { w: { dtype: "F32", shape: [3], data: w } }, {
      step: "1",
    });
    // Overwrite in place: the rename must replace the old file.
    await writeSafetensors(path, {
      w: { dtype: "F32", shape: [3], data: w.map((v) => v * 2) },
    }, { step: "2" });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["ckpt.safetensors"]);
    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { step: "2" });
    assert.deepEqual(
      toFloat32(tensors.get("w")!),
      new Float32Array([1, -2, 14]),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors rejects bad files before allocating", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const short = `${dir}/short.safetensors`;
    await Deno.writeFile(short, new Uint8Array(5));
    await assert.rejects(
      readSafetensors(short),
      (e: Error) =>
        e instanceof SafetensorsError &&
        /short\.safetensors.*too short/.test(e.message),
    );
    // Claims a 90 MB header (under the limit) in a 16-byte file.
    const big = `${dir}/big.safetensors`;
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, 90_000_000n, true);
    await Deno.writeFile(big, b);
    await assert.rejects(readSafetensors(big), /past the end of the file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decode rejects malformed files with clear messages", () => {
  const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const bad = (bytes: Uint8Array, re: RegExp) =>
    assert.throws(
      () => decodeSafetensors(bytes),
      (e: Error) => e instanceof SafetensorsError && re.test(e.message),
      `expected ${re}`,
    );
  // Sanity: the base case decodes.
  assert.equal(decodeSafetensors(file(ok, 8)).tensors.size, 1);

  bad(new Uint8Array(7), /too short \(7 bytes/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 100_000_001n, true);
  bad(huge, /exceeds the limit/);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  bad(huge, /exceeds the limit/);
  new DataView(huge.buffer).setBigUint64(0, 9n, true);
  bad(huge, /runs past the end/);

  bad(rawFile('{"a": '), /not valid JSON/);
  const invalidUtf8 = rawFile("{}  ");
  invalidUtf8[9] = 0xff;
  bad(invalidUtf8, /not valid UTF-8/);
  bad(rawFile("[1, 2]"), /must be an object/);
  bad(rawFile("null"), /must be an object/);
  bad(file({ a: 5 }, 0), /"a": entry must be an object/);

  bad(
    file({ a: { shape: [2], data_offsets: [0, 8] } }, 8),
    /"a": missing dtype/,
  );
  bad(
    file({ a: { dtype: "F8", shape: [2], data_offsets: [0, 8] } }, 8),
    /"a": unknown dtype "F8"/,
  );
  bad(
    file({ a: { dtype: "F32", data_offsets: [0, 8] } }, 8),
    /"a": missing shape/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, 8),
    /"a": invalid shape/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [1.5], data_offsets: [0, 8] } }, 8),
    /"a": invalid shape/,
  );
  bad(
    file({ a: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, 8),
    /"a": shape must be an array/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [2] } }, 8),
    /"a": missing data_offsets/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, 8),
    /"a": invalid data_offsets/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [2], data_offsets: [0] } }, 8),
    /"a": invalid data_offsets/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [2], data_offsets: [0, "8"] } }, 8),
    /"a": invalid data_offsets/,
  );

  // Size mismatch and absurd shapes.
  bad(
    file({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8),
    /"a": shape \[3\] of F32 needs 3 x 4 bytes but data_offsets span 8/,
  );
  bad(
    file({
      a: {
        dtype: "F32",
        shape: [2 ** 30, 2 ** 30, 2 ** 30],
        data_offsets: [0, 8],
      },
    }, 8),
    /"a": absurd shape/,
  );
  bad(
    file({ a: { dtype: "F64", shape: [2 ** 50], data_offsets: [0, 8] } }, 8),
    /"a": shape .* needs 1125899906842624 x 8 bytes/,
  );

  // Layout: out of range, overlap, gaps.
  bad(
    file({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 8),
    /"a": data_offsets \[0, 16\] out of range of the data buffer \(8 bytes\)/,
  );
  bad(
    file({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, 12),
    /"b".*overlap tensor "a"/,
  );
  bad(
    file({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    }, 8),
    /overlap/,
  );
  bad(
    file({
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
    }, 12),
    /gap in the data buffer: bytes \[4, 8\) before tensor "b"/,
  );
  bad(
    file({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8),
    /gap .*\[0, 4\) before tensor "a"/,
  );
  bad(file(ok, 12), /gap .*\[8, 12\) at the end/);

  // Metadata.
  bad(
    file({ ...ok, __metadata__: { k: 1 } }, 8),
    /__metadata__ value for "k" must be a string/,
  );
  bad(
    file({ ...ok, __metadata__: ["x"] }, 8),
    /__metadata__ must be an object/,
  );
});
