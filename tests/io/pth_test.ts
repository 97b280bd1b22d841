/**
 * The `.pth` writer and reader without Python: ZIP structure (CRC-32, 64-byte alignment, entry names),
 * pickle opcodes (only those PyTorch 1.13's weights-only unpickler accepts), round trips of every supported
 * value, and a file written by `torch.save` itself (tests/fixtures/torch_save_small.pth, from
 * `tools/verify_export.py --make-fixture`) parsed and compared opcode by opcode with this writer's output.
 */
import assert from "node:assert/strict";
import { OP, opName, PickleWriter, unpickle } from "../../src/io/pickle.ts";
import { decodePth, encodePth, PthError, PthTensor, readPth, writePth } from "../../src/io/torch_pth.ts";
import { crc32, decodeZip, encodeZip } from "../../src/io/zip.ts";

const FIXTURE = new URL("../fixtures/torch_save_small.pth", import.meta.url).pathname;

/** The opcodes `torch._weights_only_unpickler` of PyTorch 1.13 implements. */
const WEIGHTS_ONLY_1_13 = new Set([
  "GLOBAL",
  "NEWOBJ",
  "REDUCE",
  "BUILD",
  "APPEND",
  "APPENDS",
  "SETITEM",
  "SETITEMS",
  "MARK",
  "TUPLE",
  "TUPLE1",
  "TUPLE2",
  "TUPLE3",
  "NONE",
  "NEWFALSE",
  "NEWTRUE",
  "EMPTY_TUPLE",
  "EMPTY_LIST",
  "EMPTY_DICT",
  "EMPTY_SET",
  "BININT",
  "BININT1",
  "BININT2",
  "BINUNICODE",
  "SHORT_BINSTRING",
  "BINPERSID",
  "BINGET",
  "LONG_BINGET",
  "BINPUT",
  "LONG_BINPUT",
  "LONG1",
  "PROTO",
  "STOP",
]);

function sample() {
  const sd = new Map<string, PthTensor>([
    ["conv.weight", PthTensor.f32([2, 3, 1, 2], Float32Array.from({ length: 12 }, (_, i) => i / 8 - 0.5))],
    ["bn.running_var", PthTensor.f32([2], Float32Array.of(1.5, -0))],
    ["bn.num_batches_tracked", PthTensor.i64Scalar(123456789012n)],
    ["empty", PthTensor.f32([0, 4], new Float32Array(0))],
    ["f64", new PthTensor("F64", [2], Float64Array.of(Math.PI, -1e300))],
    ["i32", new PthTensor("I32", [3], Int32Array.of(-1, 0, 2 ** 31 - 1))],
  ]);
  return {
    state_dict: sd,
    nested: { a: [1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, 2n ** 70n, -(2n ** 70n)] },
    s: "héllo ✓",
    t: true,
    f: false,
    n: null,
    empty: {},
    emptyList: [],
  };
}

Deno.test("crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  const b = new TextEncoder().encode("hello world");
  assert.equal(crc32(b.subarray(5), crc32(b.subarray(0, 5))), crc32(b), "incremental");
});

Deno.test("zip: stored entries, 64-byte aligned data, CRC checked on read", () => {
  const entries = [
    { name: "a/x", data: new Uint8Array([1, 2, 3]) },
    { name: "a/longer/name", data: new Uint8Array(100).fill(7) },
    { name: "a/empty", data: new Uint8Array(0) },
  ];
  const bytes = encodeZip(entries, 64);
  const z = decodeZip(bytes);
  assert.deepEqual(z.entries.map((e) => e.name), entries.map((e) => e.name));
  for (const [i, e] of z.entries.entries()) {
    assert.equal(e.dataOffset % 64, 0, `${e.name} aligned`);
    assert.equal(e.method, 0);
    assert.equal(e.crc, crc32(entries[i].data));
    assert.deepEqual(z.read(e.name), entries[i].data);
  }
  const bad = bytes.slice();
  bad[z.entries[1].dataOffset + 5] ^= 1;
  assert.throws(() => decodeZip(bad).read("a/longer/name"), /CRC-32 mismatch/);
  assert.throws(() => decodeZip(bytes.subarray(0, bytes.length - 30)), /end-of-central-directory|truncated/);
  assert.throws(() => encodeZip([{ name: "a", data: new Uint8Array(1) }, { name: "a", data: new Uint8Array(1) }]));
});

Deno.test(".pth round trip: tensors of every dtype, nested dicts, lists, ints of every size, strings, bools, None", () => {
  const value = sample();
  const bytes = encodePth(value);
  const r = decodePth(bytes);
  const got = r.value as Map<string, unknown>;
  assert.deepEqual([...got.keys()], Object.keys(value));
  const sd = got.get("state_dict") as Map<string, PthTensor>;
  assert.ok(sd instanceof Map);
  for (const [k, t] of value.state_dict) {
    const g = sd.get(k)!;
    assert.ok(g instanceof PthTensor, k);
    assert.equal(g.dtype, t.dtype, k);
    assert.deepEqual(g.shape, t.shape, k);
    assert.deepEqual(g.data, t.data, k);
  }
  assert.ok(Object.is((sd.get("bn.running_var")!.data as Float32Array)[1], -0), "-0 kept bit-exact");
  assert.deepEqual(
    (got.get("nested") as Map<string, unknown>).get("a"),
    [1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, 2n ** 70n, -(2n ** 70n)],
  );
  assert.equal(got.get("s"), "héllo ✓");
  assert.equal(got.get("t"), true);
  assert.equal(got.get("f"), false);
  assert.equal(got.get("n"), null);
  assert.deepEqual(got.get("empty"), new Map());
  assert.deepEqual(got.get("emptyList"), []);
  assert.deepEqual(encodePth(value), bytes, "deterministic bytes");
});

Deno.test(".pth layout: archive entries, records, alignment, and only opcodes PyTorch 1.13 weights_only accepts", () => {
  const r = decodePth(encodePth(sample()));
  assert.equal(r.archiveName, "archive");
  assert.deepEqual(r.entries.map((e) => e.name), [
    "archive/data.pkl",
    "archive/.format_version",
    "archive/.storage_alignment",
    "archive/byteorder",
    ...[0, 1, 2, 3, 4, 5].map((i) => `archive/data/${i}`),
    "archive/version",
  ]);
  for (const e of r.entries) assert.equal(e.dataOffset % 64, 0, `${e.name} data at ${e.dataOffset}`);
  assert.deepEqual(r.records, {
    ".format_version": "1",
    ".storage_alignment": "64",
    byteorder: "little",
    version: "3\n",
  });
  const unsupported = [...new Set(r.opcodes)].filter((o) => !WEIGHTS_ONLY_1_13.has(o));
  assert.deepEqual(unsupported, []);
  assert.equal(r.opcodes[0], "PROTO");
  assert.equal(r.opcodes.at(-1), "STOP");
});

Deno.test("a tensor is pickled as _rebuild_tensor_v2(persistent_load(('storage', torch.XStorage, key, 'cpu', n)), ...)", () => {
  const bytes = encodePth(new Map([["x", PthTensor.f32([2, 3], new Float32Array(6))], ["n", PthTensor.i64Scalar(5)]]));
  const z = decodeZip(bytes);
  const pkl = z.read("archive/data.pkl");
  const text = new TextDecoder("latin1").decode(pkl);
  assert.ok(text.includes("ccollections\nOrderedDict\n"));
  assert.ok(text.includes("ctorch._utils\n_rebuild_tensor_v2\n"));
  assert.ok(text.includes("ctorch\nFloatStorage\n"));
  assert.ok(text.includes("ctorch\nLongStorage\n"));
  // capture the raw arguments of the rebuild call
  const calls: unknown[][] = [];
  const pids: unknown[] = [];
  unpickle(pkl, {
    persistentLoad: (pid) => (pids.push(pid), { pid }),
    reduce(fn, args) {
      const path = (fn as { path?: string }).path;
      if (path === "collections.OrderedDict") return new Map();
      if (path === "torch._utils._rebuild_tensor_v2") return calls.push(args);
      return undefined;
    },
  });
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[0].slice(1, 5), [0, [2, 3], [3, 1], false]);
  assert.deepEqual(calls[1].slice(1, 5), [0, [], [], false]);
  assert.deepEqual(
    pids.map((p) => [(p as unknown[])[0], (p as unknown[])[2], (p as unknown[])[3], (p as unknown[])[4]]),
    [
      ["storage", "0", "cpu", 6],
      ["storage", "1", "cpu", 1],
    ],
  );
  assert.equal(z.read("archive/data/0").length, 24);
  assert.deepEqual([...z.read("archive/data/1")], [5, 0, 0, 0, 0, 0, 0, 0], "little-endian int64");
});

Deno.test("torch.save's own file parses, and this writer emits the same opcodes and records for the same dict", async () => {
  const torch = await readPth(FIXTURE);
  const v = torch.value as Map<string, PthTensor>;
  assert.deepEqual([...v.keys()], ["weight", "num_batches_tracked"]);
  assert.equal(v.get("weight")!.dtype, "F32");
  assert.deepEqual(v.get("weight")!.shape, [2, 3]);
  assert.deepEqual([...v.get("weight")!.data as Float32Array], [0, 0.25, 0.5, 0.75, 1, 1.25]);
  assert.equal(v.get("num_batches_tracked")!.dtype, "I64");
  assert.deepEqual(v.get("num_batches_tracked")!.shape, []);
  assert.deepEqual([...v.get("num_batches_tracked")!.data as BigInt64Array], [7n]);
  for (const e of torch.entries) assert.equal(e.dataOffset % 64, 0, `torch aligns ${e.name}`);

  const ours = decodePth(encodePth({
    weight: PthTensor.f32([2, 3], Float32Array.of(0, 0.25, 0.5, 0.75, 1, 1.25)),
    num_batches_tracked: PthTensor.i64Scalar(7),
  }));
  assert.deepEqual(ours.opcodes, torch.opcodes, "identical pickle opcode sequence");
  const rel = (f: typeof torch) => f.entries.map((e) => e.name.slice(f.archiveName.length + 1));
  const missing = rel(torch).filter((n) => !rel(ours).includes(n));
  assert.deepEqual(missing, [], "every record torch writes is present");
  assert.equal(ours.records.version, torch.records.version);
  // the pickles differ only in the archive-independent storage keys, which are equal too: compare bytes
  const pkl = (b: Uint8Array, f: typeof torch) => decodeZip(b).read(`${f.archiveName}/data.pkl`);
  assert.deepEqual(
    pkl(
      encodePth({
        weight: PthTensor.f32([2, 3], Float32Array.of(0, 0.25, 0.5, 0.75, 1, 1.25)),
        num_batches_tracked: PthTensor.i64Scalar(7),
      }),
      ours,
    ),
    pkl(await Deno.readFile(FIXTURE), torch),
    "byte-identical data.pkl",
  );
});

Deno.test("writePth writes atomically and readPth names the file in errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/x.pth`;
    await writePth(p, { a: 1 });
    assert.deepEqual((await readPth(p)).value, new Map([["a", 1]]));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["x.pth"], "no temporary files left");
    const bytes = await Deno.readFile(p);
    await Deno.writeFile(p, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(readPth(p), (e: Error) => e instanceof PthError && e.message.startsWith(p));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("values that cannot be saved give a PthError", () => {
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  assert.throws(() => encodePth(cyc as never), PthError);
  assert.throws(() => encodePth({ d: new Date() as never }), PthError);
  assert.throws(() => encodePth({ big: 2 ** 60 }), /beyond 2\^53/);
  assert.throws(() => PthTensor.f32([2, 2], new Float32Array(3)), PthError);
  assert.throws(() => new PthTensor("I64", [1], new Float32Array(1) as never), PthError);
});

Deno.test("pickle writer: ints use the smallest opcode and memoised strings are fetched with BINGET", () => {
  const w = new PickleWriter();
  w.mark().int(5).int(300).int(-5).int(2n ** 40n).str("s").str("s").byte(OP.TUPLE);
  const { value, opcodes } = unpickle(w.finish());
  assert.deepEqual(value, [5, 300, -5, 2 ** 40, "s", "s"]);
  assert.deepEqual(opcodes, [
    "PROTO",
    "MARK",
    "BININT1",
    "BININT2",
    "BININT",
    "LONG1",
    "BINUNICODE",
    "BINPUT",
    "BINGET",
    "TUPLE",
    "STOP",
  ]);
  assert.equal(opName(0xff), "0xff");
});
