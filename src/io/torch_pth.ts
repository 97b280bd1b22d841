/**
 * PyTorch `.pth` files (the zip format `torch.save` writes since 1.6) written and read from TypeScript.
 *
 * Layout: a ZIP archive of stored entries, each entry's data aligned to 64 bytes:
 * `archive/data.pkl` (pickle protocol 2), `archive/.format_version` (`1`), `archive/.storage_alignment`
 * (`64`), `archive/byteorder` (`little`), `archive/data/<key>` (raw little-endian storage bytes, one per
 * tensor) and `archive/version` (`3`). Each tensor is pickled exactly as `torch.save` does:
 * `torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage, '<key>', 'cpu', numel)),
 * 0, shape, stride, False, collections.OrderedDict())`.
 *
 * What loads where: a file of tensors (F32, F64, F16, I64, I32), dicts (plain objects → `dict`, `Map`s →
 * `collections.OrderedDict`, as state dicts are), lists, strings, ints, bools and `None` loads with
 * `torch.load(p)` and with `torch.load(p, weights_only=True)` from PyTorch 1.13 (where `weights_only` was
 * introduced) to PyTorch ≥ 2.6 (where it is the default). Non-integer numbers are written as `BINFLOAT`,
 * which PyTorch 1.13's weights-only unpickler rejects (newer versions accept it): the exports write none.
 * PyTorch 1.13 ignores the `byteorder`, `.format_version` and `.storage_alignment` records; newer versions
 * read them.
 *
 * The reader understands what this writer and `torch.save` (1.13 to 2.x) emit for such values; it is
 * meant for tests and inspection, not as a general unpickler.
 *
 * @module
 */
import { OP, PickleError, PickleWriter, PyGlobal, unpickle } from "./pickle.ts";
import { decodeZip, encodeZip, type ZipEntry, ZipError } from "./zip.ts";

/** Element types a `.pth` tensor can have here. */
export type PthDType = "F32" | "F64" | "F16" | "I64" | "I32";

/** Typed array per dtype (F16 as raw bits). */
export type PthData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array;

const STORAGE: Record<PthDType, { cls: string; size: number; ctor: string }> = {
  F32: { cls: "FloatStorage", size: 4, ctor: "Float32Array" },
  F64: { cls: "DoubleStorage", size: 8, ctor: "Float64Array" },
  F16: { cls: "HalfStorage", size: 2, ctor: "Uint16Array" },
  I64: { cls: "LongStorage", size: 8, ctor: "BigInt64Array" },
  I32: { cls: "IntStorage", size: 4, ctor: "Int32Array" },
};
const DTYPE_OF_STORAGE = new Map(Object.entries(STORAGE).map(([k, v]) => [v.cls, k as PthDType]));

/** A dense, contiguous CPU tensor. */
export class PthTensor {
  /** A tensor of `dtype` and `shape` over `data` (whose length must match the shape). */
  constructor(readonly dtype: PthDType, readonly shape: number[], readonly data: PthData) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new PthError(`invalid shape [${shape}]`);
    if (data.length !== n) throw new PthError(`tensor of shape [${shape}] needs ${n} elements, got ${data.length}`);
    if (data.constructor.name !== STORAGE[dtype].ctor) {
      throw new PthError(`dtype ${dtype} needs a ${STORAGE[dtype].ctor}, got ${data.constructor.name}`);
    }
  }

  /** A float32 tensor. */
  static f32(shape: number[], data: Float32Array): PthTensor {
    return new PthTensor("F32", shape, data);
  }

  /** A 0-d int64 tensor (as BN's `num_batches_tracked`). */
  static i64Scalar(v: number | bigint): PthTensor {
    return new PthTensor("I64", [], BigInt64Array.of(BigInt(v)));
  }
}

/** Values that can be saved. */
export type PthValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PthTensor
  | PthValue[]
  | Map<string, PthValue>
  | { [key: string]: PthValue };

/** Raised for values that cannot be written or files that cannot be read. */
export class PthError extends Error {
  /** `message` says what is wrong with the file or value. */
  constructor(message: string) {
    super(message);
    this.name = "PthError";
  }
}

/** How many items CPython's pickler puts in one SETITEMS/APPENDS batch. */
const BATCH = 1000;

function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) s[i] = acc, acc *= shape[i];
  return s;
}

function intTuple(w: PickleWriter, xs: number[]): void {
  if (xs.length <= 3) {
    for (const x of xs) w.int(x);
    w.tuple(xs.length as 0 | 1 | 2 | 3);
  } else {
    w.mark();
    for (const x of xs) w.int(x);
    w.byte(OP.TUPLE);
  }
  if (xs.length) w.memoize(); // CPython memoises every tuple but the (shared) empty one
}

/** Serialises `value` into `data.pkl` bytes, collecting tensor storages. */
function pickleValue(value: PthValue): { pkl: Uint8Array; storages: Uint8Array[] } {
  const w = new PickleWriter();
  const storages: Uint8Array[] = [];
  const seen = new Set<object>();
  const items = (pairs: [string, PthValue][]) => {
    for (let i = 0; i < pairs.length; i += BATCH) {
      const chunk = pairs.slice(i, i + BATCH);
      if (chunk.length === 1) {
        w.str(chunk[0][0]), emit(chunk[0][1]), w.byte(OP.SETITEM);
        continue;
      }
      w.mark();
      for (const [k, v] of chunk) w.str(k), emit(v);
      w.byte(OP.SETITEMS);
    }
  };
  function tensor(t: PthTensor): void {
    const key = String(storages.length);
    const d = t.data;
    storages.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice());
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.mark();
    w.mark().str("storage").global("torch", STORAGE[t.dtype].cls).str(key).str("cpu").int(d.length).byte(OP.TUPLE);
    w.memoize().byte(OP.BINPERSID);
    w.int(0);
    intTuple(w, t.shape);
    intTuple(w, contiguousStride(t.shape));
    w.bool(false);
    w.global("collections", "OrderedDict").tuple(0).byte(OP.REDUCE).memoize();
    w.byte(OP.TUPLE).memoize();
    w.byte(OP.REDUCE).memoize();
  }
  function emit(v: PthValue): void {
    if (v === null) return void w.none();
    switch (typeof v) {
      case "boolean":
        return void w.bool(v);
      case "bigint":
        return void w.int(v);
      case "number":
        if (Number.isSafeInteger(v)) return void w.int(v);
        if (Number.isInteger(v)) throw new PthError(`integer ${v} is beyond 2^53: pass a bigint`);
        return void w.float(v);
      case "string":
        return void w.str(v);
    }
    if (v instanceof PthTensor) return tensor(v);
    if (seen.has(v)) throw new PthError("cyclic or shared container in the value to save");
    seen.add(v);
    if (Array.isArray(v)) {
      w.byte(OP.EMPTY_LIST).memoize();
      for (let i = 0; i < v.length; i += BATCH) {
        const chunk = v.slice(i, i + BATCH);
        if (chunk.length === 1) emit(chunk[0]), w.byte(OP.APPEND);
        else w.mark(), chunk.forEach(emit), w.byte(OP.APPENDS);
      }
    } else if (v instanceof Map) {
      w.global("collections", "OrderedDict").tuple(0).byte(OP.REDUCE).memoize();
      for (const k of v.keys()) if (typeof k !== "string") throw new PthError(`non-string dict key ${String(k)}`);
      items([...v.entries()]);
    } else if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      w.byte(OP.EMPTY_DICT).memoize();
      items(Object.entries(v));
    } else {
      throw new PthError(`cannot save a ${(v as object).constructor?.name ?? typeof v}`);
    }
  }
  emit(value);
  return { pkl: w.finish(), storages };
}

/** Encodes `value` as the bytes of a `.pth` file (archive folder name `archive`, like `torch.save`'s default). */
export function encodePth(value: PthValue): Uint8Array {
  const { pkl, storages } = pickleValue(value);
  const enc = new TextEncoder();
  const a = "archive";
  return encodeZip([
    { name: `${a}/data.pkl`, data: pkl },
    { name: `${a}/.format_version`, data: enc.encode("1") },
    { name: `${a}/.storage_alignment`, data: enc.encode("64") },
    { name: `${a}/byteorder`, data: enc.encode("little") },
    ...storages.map((data, i) => ({ name: `${a}/data/${i}`, data })),
    { name: `${a}/version`, data: enc.encode("3\n") },
  ], 64);
}

/**
 * Writes `bytes` to `path` atomically: a temporary sibling is written and flushed to disk, then renamed over
 * `path`, so a reader sees the previous file or the new one, never a partial one.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  const tmp = `${path}.tmp-${rand[0].toString(16)}${rand[1].toString(16)}`;
  try {
    {
      using f = await Deno.open(tmp, { write: true, createNew: true });
      let pos = 0;
      while (pos < bytes.length) pos += await f.write(bytes.subarray(pos));
      await f.syncData();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Writes `value` as a `.pth` file (atomically). */
export async function writePth(path: string, value: PthValue): Promise<void> {
  await writeFileAtomic(path, encodePth(value));
}

/** A read `.pth` file: the value, plus what tests inspect. */
export interface PthFile {
  /** dicts and OrderedDicts become `Map`s; tensors {@link PthTensor}s (copies). */
  value: unknown;
  /** The folder every entry lives in (`archive` here; `torch.save` 1.13 uses the file's stem). */
  archiveName: string;
  /** The archive's entries. */
  entries: ZipEntry[];
  /** Opcode names of `data.pkl`, in order. */
  opcodes: string[];
  /** Records other than `data.pkl` and storages, as text (`version`, `byteorder`, …). */
  records: Record<string, string>;
}

function typedFrom(dtype: PthDType, bytes: Uint8Array): PthData {
  const b = bytes.slice(); // aligned private copy
  switch (dtype) {
    case "F32":
      return new Float32Array(b.buffer, 0, b.length / 4);
    case "F64":
      return new Float64Array(b.buffer, 0, b.length / 8);
    case "F16":
      return new Uint16Array(b.buffer, 0, b.length / 2);
    case "I64":
      return new BigInt64Array(b.buffer, 0, b.length / 8);
    case "I32":
      return new Int32Array(b.buffer, 0, b.length / 4);
  }
}

/** Parses a `.pth` (zip) file: checks every entry's CRC, runs the pickle, rebuilds tensors. */
export function decodePth(bytes: Uint8Array): PthFile {
  try {
    const zip = decodeZip(bytes);
    if (zip.entries.length === 0) throw new PthError("empty archive");
    const first = zip.entries[0].name;
    const archiveName = first.includes("/") ? first.slice(0, first.indexOf("/")) : "";
    if (!archiveName) throw new PthError(`entry "${first}" is not inside an archive folder`);
    const records: Record<string, string> = {};
    for (const e of zip.entries) {
      if (!e.name.startsWith(`${archiveName}/`)) {
        throw new PthError(`entry "${e.name}" is outside the archive folder "${archiveName}"`);
      }
      const rel = e.name.slice(archiveName.length + 1);
      const data = zip.read(e.name); // verifies the CRC of every entry
      if (rel !== "data.pkl" && !rel.startsWith("data/") && data.length < 4096) {
        records[rel] = new TextDecoder().decode(data);
      }
    }
    const storages = new Map<string, { dtype: PthDType; bytes: Uint8Array }>();
    const { value, opcodes } = unpickle(zip.read(`${archiveName}/data.pkl`), {
      persistentLoad(pid) {
        if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof PyGlobal)) {
          throw new PthError(`unsupported persistent id ${JSON.stringify(pid)}`);
        }
        const dtype = DTYPE_OF_STORAGE.get(pid[1].name);
        if (!dtype || pid[1].module !== "torch") throw new PthError(`unsupported storage type ${pid[1].path}`);
        const key = String(pid[2]);
        const numel = Number(pid[4]);
        let s = storages.get(key);
        if (!s) {
          const raw = zip.read(`${archiveName}/data/${key}`);
          if (raw.length !== numel * STORAGE[dtype].size) {
            throw new PthError(`storage ${key}: ${raw.length} bytes for ${numel} × ${dtype}`);
          }
          s = { dtype, bytes: raw };
          storages.set(key, s);
        }
        return s;
      },
      reduce(fn, args) {
        if (!(fn instanceof PyGlobal)) return undefined;
        if (fn.path === "collections.OrderedDict" && args.length === 0) return new Map();
        if (fn.path !== "torch._utils._rebuild_tensor_v2") return undefined;
        const [storage, offset, shape, stride] = args as [
          { dtype: PthDType; bytes: Uint8Array },
          number,
          number[],
          number[],
        ];
        const size = STORAGE[storage.dtype].size;
        const numel = shape.reduce((a, b) => a * b, 1);
        const all = typedFrom(storage.dtype, storage.bytes);
        const contiguous = contiguousStride([...shape]).every((s, i) => shape[i] <= 1 || s === stride[i]);
        if (contiguous) {
          if ((offset + numel) * size > storage.bytes.length) throw new PthError("tensor runs past its storage");
          return new PthTensor(storage.dtype, [...shape], all.slice(offset, offset + numel) as PthData);
        }
        // strided view: gather
        const out = typedFrom(storage.dtype, new Uint8Array(numel * size));
        const idx = new Array<number>(shape.length).fill(0);
        for (let i = 0; i < numel; i++) {
          let src = offset;
          for (let d = 0; d < shape.length; d++) src += idx[d] * stride[d];
          if (src >= all.length) throw new PthError("tensor runs past its storage");
          (out as unknown as unknown[])[i] = (all as unknown as unknown[])[src];
          for (let d = shape.length - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
          }
        }
        return new PthTensor(storage.dtype, [...shape], out);
      },
    });
    return { value, archiveName, entries: zip.entries, opcodes, records };
  } catch (e) {
    if (e instanceof ZipError || e instanceof PickleError) throw new PthError(e.message);
    throw e;
  }
}

/** Reads a `.pth` file (see {@link decodePth}); errors name the path. */
export async function readPth(path: string): Promise<PthFile> {
  const bytes = await Deno.readFile(path);
  try {
    return decodePth(bytes);
  } catch (e) {
    if (e instanceof PthError) throw new PthError(`${path}: ${e.message}`);
    throw e;
  }
}
