/**
 * Reader and writer for the safetensors checkpoint format.
 *
 * Layout: 8-byte little-endian u64 header length `N`, `N` bytes of UTF-8 JSON
 * (padded with spaces), then the data buffer. Every rule of the format is
 * enforced on decode so that a malformed file gives a
 * {@linkcode SafetensorsError} instead of a crash or a huge allocation.
 *
 * @module
 */

import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../util/f16.ts";
export { f16BitsToF32, f32ToF16Bits };

/** Element types of the safetensors format supported here. */
export type StDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** A decoded tensor: raw little-endian bytes in C order. */
export interface StTensor {
  /** Element type. */
  dtype: StDType;
  /** Shape, outermost first. */
  shape: number[];
  /**
   * Raw bytes. Always a private copy with its own `ArrayBuffer` at byte
   * offset 0, so `new Float32Array(t.bytes.buffer)` and the like are safe.
   */
  bytes: Uint8Array;
}

/**
 * A tensor to encode. `data.length` must equal the product of `shape`.
 *
 * The array type must match the dtype (F64: Float64Array, F32: Float32Array,
 * F16/BF16: Uint16Array of raw bits, I64: BigInt64Array, I32: Int32Array,
 * I16: Int16Array, I8: Int8Array, U8/BOOL: Uint8Array). As a convenience,
 * F16 and BF16 also accept a Float32Array or Float64Array, which is rounded
 * to nearest even.
 */
export type StInput = {
  dtype: StDType;
  shape: number[];
  data:
    | Float32Array
    | Float64Array
    | Uint16Array
    | Int32Array
    | BigInt64Array
    | Uint8Array
    | Int8Array
    | Int16Array;
};

/** Raised for any malformed safetensors input or invalid tensor to encode. */
export class SafetensorsError extends Error {
  /** `message` says what is malformed. */
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/** Same limit as the reference implementation. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

const DTYPE_SIZE: Record<StDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function isDType(x: unknown): x is StDType {
  return typeof x === "string" && Object.hasOwn(DTYPE_SIZE, x);
}

// Typed-array views are used for the raw bytes, which are little-endian by
// definition; every platform Deno runs on is little-endian, but say so loudly
// rather than silently produce garbage if that ever changes.
const HOST_IS_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function assertLittleEndianHost(): void {
  if (!HOST_IS_LE) {
    throw new SafetensorsError("big-endian hosts are not supported");
  }
}

// ---------------------------------------------------------------------------
// Encoding

function checkShape(name: string, shape: unknown): number {
  if (!Array.isArray(shape)) {
    throw new SafetensorsError(`tensor "${name}": shape must be an array`);
  }
  let numel = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(
        `tensor "${name}": invalid shape ${JSON.stringify(shape)} (dimensions must be non-negative integers)`,
      );
    }
    if (d !== 0 && numel > Number.MAX_SAFE_INTEGER / d) {
      throw new SafetensorsError(
        `tensor "${name}": absurd shape ${JSON.stringify(shape)} (element count overflows)`,
      );
    }
    numel *= d;
  }
  return numel;
}

/** Returns the raw little-endian bytes of `t`, converting when allowed. */
function inputBytes(name: string, t: StInput): Uint8Array {
  const { dtype, data } = t;
  const expected: Record<StDType, string> = {
    F64: "Float64Array",
    F32: "Float32Array",
    F16: "Uint16Array",
    BF16: "Uint16Array",
    I64: "BigInt64Array",
    I32: "Int32Array",
    I16: "Int16Array",
    I8: "Int8Array",
    U8: "Uint8Array",
    BOOL: "Uint8Array",
  };
  if (
    (dtype === "F16" || dtype === "BF16") &&
    (data instanceof Float32Array || data instanceof Float64Array)
  ) {
    const conv = dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
    const bits = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) bits[i] = conv(data[i]);
    return new Uint8Array(bits.buffer);
  }
  const ctor = data.constructor.name;
  if (ctor !== expected[dtype]) {
    throw new SafetensorsError(
      `tensor "${name}": dtype ${dtype} needs a ${expected[dtype]}, got ${ctor}`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Encodes tensors (and optional string metadata) into safetensors bytes.
 *
 * Tensors are laid out by decreasing element size, then by name, so the
 * output is deterministic and every tensor is aligned to its element size.
 */
export function encodeSafetensors(
  tensors: Record<string, StInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  assertLittleEndianHost();
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === METADATA_KEY || name.length === 0) {
      throw new SafetensorsError(`invalid tensor name "${name}"`);
    }
    const t = tensors[name];
    if (!isDType(t.dtype)) {
      throw new SafetensorsError(
        `tensor "${name}": unknown dtype ${JSON.stringify(t.dtype)}`,
      );
    }
  }
  names.sort((a, b) =>
    DTYPE_SIZE[tensors[b].dtype] - DTYPE_SIZE[tensors[a].dtype] ||
    (a < b ? -1 : a > b ? 1 : 0)
  );

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(`metadata "${k}" must be a string`);
      }
    }
    header[METADATA_KEY] = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const numel = checkShape(name, t.shape);
    if (t.data.length !== numel) {
      throw new SafetensorsError(
        `tensor "${name}": data has ${t.data.length} elements, shape ${JSON.stringify(t.shape)} needs ${numel}`,
      );
    }
    const bytes = inputBytes(name, t);
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    chunks.push(bytes);
    offset += bytes.length;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen); // space padding
  let pos = 8 + headerLen;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

interface Entry {
  name: string;
  dtype: StDType;
  shape: number[];
  begin: number;
  end: number;
}

function checkMinSize(totalSize: number): void {
  if (totalSize < 8) {
    throw new SafetensorsError(
      `file too short (${totalSize} bytes, need at least 8 for the header length)`,
    );
  }
}

/** Reads and validates the 8-byte header length against the total size. */
function headerLength(prefix: Uint8Array, totalSize: number): number {
  checkMinSize(totalSize);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  if (8n + n > BigInt(totalSize)) {
    throw new SafetensorsError(
      `header length ${n} runs past the end of the file (${totalSize} bytes)`,
    );
  }
  return Number(n);
}

function parseHeader(
  jsonBytes: Uint8Array,
): { entries: Entry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(jsonBytes);
  } catch {
    throw new SafetensorsError("header is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(
      `header is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SafetensorsError("header JSON must be an object");
  }

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (typeof info !== "object" || info === null || Array.isArray(info)) {
        throw new SafetensorsError("__metadata__ must be an object");
      }
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") {
          throw new SafetensorsError(
            `__metadata__ value for "${k}" must be a string`,
          );
        }
        metadata[k] = v;
      }
      continue;
    }
    entries.push(parseEntry(name, info));
  }
  return { entries, metadata };
}

function parseEntry(name: string, info: unknown): Entry {
  if (typeof info !== "object" || info === null || Array.isArray(info)) {
    throw new SafetensorsError(`tensor "${name}": entry must be an object`);
  }
  const { dtype, shape, data_offsets: offs } = info as Record<string, unknown>;
  if (dtype === undefined) {
    throw new SafetensorsError(`tensor "${name}": missing dtype`);
  }
  if (!isDType(dtype)) {
    throw new SafetensorsError(
      `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`,
    );
  }
  if (shape === undefined) {
    throw new SafetensorsError(`tensor "${name}": missing shape`);
  }
  checkShape(name, shape);
  if (offs === undefined) {
    throw new SafetensorsError(`tensor "${name}": missing data_offsets`);
  }
  if (
    !Array.isArray(offs) || offs.length !== 2 ||
    !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o)) ||
    offs[0] < 0 || offs[0] > offs[1]
  ) {
    throw new SafetensorsError(
      `tensor "${name}": invalid data_offsets ${
        JSON.stringify(offs)
      } (need [begin, end] integers with 0 <= begin <= end)`,
    );
  }
  return {
    name,
    dtype,
    shape: shape as number[],
    begin: offs[0],
    end: offs[1],
  };
}

/** Checks sizes, bounds, overlaps and gaps of all entries. */
function validateLayout(entries: Entry[], bufLen: number): void {
  for (const e of entries) {
    if (e.end > bufLen) {
      throw new SafetensorsError(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] out of range of the data buffer (${bufLen} bytes)`,
      );
    }
    const size = DTYPE_SIZE[e.dtype];
    const numel = checkShape(e.name, e.shape);
    // The span is bounded by the buffer, so this guards against shapes
    // whose byte size would lose precision before comparing.
    if (numel > (e.end - e.begin) / size || numel * size !== e.end - e.begin) {
      throw new SafetensorsError(
        `tensor "${e.name}": shape ${JSON.stringify(e.shape)} of ${e.dtype} ` +
          `needs ${numel} x ${size} bytes but data_offsets span ${e.end - e.begin} bytes`,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < pos) {
      throw new SafetensorsError(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev?.name}"`,
      );
    }
    if (e.begin > pos) {
      throw new SafetensorsError(
        `gap in the data buffer: bytes [${pos}, ${e.begin}) before tensor "${e.name}" belong to no tensor`,
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== bufLen) {
    throw new SafetensorsError(
      `gap in the data buffer: bytes [${pos}, ${bufLen}) at the end belong to no tensor`,
    );
  }
}

/**
 * Decodes safetensors bytes, validating the whole header and layout first.
 * Each returned tensor owns a copy of its bytes.
 *
 * @throws {SafetensorsError} on any malformed input.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
): { tensors: Map<string, StTensor>; metadata: Record<string, string> } {
  assertLittleEndianHost();
  const n = headerLength(bytes, bytes.length);
  const { entries, metadata } = parseHeader(bytes.subarray(8, 8 + n));
  const data = bytes.subarray(8 + n);
  validateLayout(entries, data.length);
  const tensors = new Map<string, StTensor>();
  for (const e of entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      // slice() copies into a fresh buffer, so the bytes are aligned.
      bytes: data.slice(e.begin, e.end),
    });
  }
  return { tensors, metadata };
}

async function readFully(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < buf.length) {
    const n = await file.read(buf.subarray(pos));
    if (n === null) {
      throw new SafetensorsError(
        `unexpected end of file after ${pos} of ${buf.length} bytes`,
      );
    }
    pos += n;
  }
}

/**
 * Reads a safetensors file. The header length is checked against the file
 * size before anything large is allocated.
 *
 * @throws {SafetensorsError} (message prefixed with the path) when malformed.
 */
export async function readSafetensors(
  path: string,
): Promise<
  { tensors: Map<string, StTensor>; metadata: Record<string, string> }
> {
  return await withHeader(path, async (file, prefix, _n, size) => {
    // Only now is `size` known to be a sane bound for the allocation.
    const all = new Uint8Array(size);
    all.set(prefix);
    await readFully(file, all.subarray(8));
    return decodeSafetensors(all);
  });
}

/**
 * Opens `path`, reads its 8-byte prefix and checks the header length against the file size, then hands the
 * open file (positioned after the prefix) to `read`. Format errors get the path as a prefix.
 */
async function withHeader<T>(
  path: string,
  read: (file: Deno.FsFile, prefix: Uint8Array, headerBytes: number, size: number) => Promise<T>,
): Promise<T> {
  try {
    const size = (await Deno.stat(path)).size;
    checkMinSize(size);
    using file = await Deno.open(path, { read: true });
    const prefix = new Uint8Array(8);
    await readFully(file, prefix);
    return await read(file, prefix, headerLength(prefix, size), size);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Reads only a safetensors file's metadata (the `__metadata__` of its header), without its tensor data:
 * what a resumed run needs from a checkpoint before the GPU starts.
 *
 * @throws {SafetensorsError} (message prefixed with the path) when malformed.
 */
export function readSafetensorsMetadata(path: string): Promise<Record<string, string>> {
  return withHeader(path, async (file, _prefix, n) => {
    const header = new Uint8Array(n);
    await readFully(file, header);
    return parseHeader(header).metadata;
  });
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary sibling
 * which is then renamed over `path`, so readers never see a partial file.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, StInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  const rand = crypto.getRandomValues(new Uint32Array(2));
  const tmp = `${path}.tmp-${rand[0].toString(16)}${rand[1].toString(16)}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Conversion helpers

function numelOf(t: StTensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** Typed-array view of a tensor's bytes, copying first if misaligned. */
function view<T>(
  t: StTensor,
  Ctor: new (buf: ArrayBufferLike, off: number, len: number) => T,
  size: number,
): T {
  const b = t.bytes.byteOffset % size === 0 ? t.bytes : t.bytes.slice();
  return new Ctor(b.buffer, b.byteOffset, b.byteLength / size);
}

/**
 * Converts any tensor to a new Float32Array (F64 and I64 are rounded to the
 * nearest f32; BOOL/U8 become 0..255).
 */
export function toFloat32(t: StTensor): Float32Array {
  assertLittleEndianHost();
  const n = numelOf(t);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case "F32":
      out.set(view(t, Float32Array, 4));
      break;
    case "F64":
      out.set(view(t, Float64Array, 8));
      break;
    case "F16": {
      const h = view(t, Uint16Array, 2);
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(h[i]);
      break;
    }
    case "BF16": {
      const h = view(t, Uint16Array, 2);
      for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(h[i]);
      break;
    }
    case "I64": {
      const v = view(t, BigInt64Array, 8);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]);
      break;
    }
    case "I32":
      out.set(view(t, Int32Array, 4));
      break;
    case "I16":
      out.set(view(t, Int16Array, 2));
      break;
    case "I8":
      out.set(view(t, Int8Array, 1));
      break;
    case "U8":
    case "BOOL":
      out.set(t.bytes);
      break;
  }
  return out;
}

/**
 * Converts an integer tensor (I64/I32/I16/I8/U8/BOOL) to a new Int32Array.
 *
 * @throws {SafetensorsError} for float dtypes or I64 values outside i32.
 */
export function toInt32(t: StTensor): Int32Array {
  assertLittleEndianHost();
  const n = numelOf(t);
  const out = new Int32Array(n);
  switch (t.dtype) {
    case "I64": {
      const v = view(t, BigInt64Array, 8);
      for (let i = 0; i < n; i++) {
        if (v[i] < -2147483648n || v[i] > 2147483647n) {
          throw new SafetensorsError(
            `I64 value ${v[i]} at index ${i} is out of int32 range`,
          );
        }
        out[i] = Number(v[i]);
      }
      break;
    }
    case "I32":
      out.set(view(t, Int32Array, 4));
      break;
    case "I16":
      out.set(view(t, Int16Array, 2));
      break;
    case "I8":
      out.set(view(t, Int8Array, 1));
      break;
    case "U8":
    case "BOOL":
      out.set(t.bytes);
      break;
    default:
      throw new SafetensorsError(
        `cannot convert ${t.dtype} tensor to int32 (not an integer dtype)`,
      );
  }
  return out;
}
