/**
 * Training checkpoints: one safetensors file holding everything a run needs to resume exactly, written
 * atomically (a flushed temporary sibling renamed over the target, so the previous checkpoint stays intact
 * until the new one is complete).
 *
 * Tensor names (every tensor in PyTorch layout, OIHW for convolutions, so a checkpoint is inspectable with
 * any safetensors reader):
 *
 * - `params/<store>/<entry>`: trainable values of each {@link ParamStore} (its flat `params` buffer);
 * - `momentum/<store>/<entry>`: the optimizer's momentum of each trainable entry (flat `momentum` buffer);
 * - `stats/<store>/<entry>`: BN running statistics (flat `stats` buffer);
 * - `tensor/<name>`: extra named tensors (queue, centre, …): f32 → F32, f16 → F16, i32 → I32, u32 → I64.
 *
 * Gradients are not saved (recomputed every step) nor the weight-decay mask (rebuilt from the config).
 *
 * Metadata (`__metadata__`, strings): `plrc.format` (`plrc-checkpoint/1`), `plrc.version`, and each key of
 * the caller's `meta` as JSON text. The trainer is expected to store at least `step`, `epoch`, `rng`
 * (generator states), `config` (the resolved config: an object, or its YAML as a string) and
 * `num_batches_tracked` (BN counters: one number, or an object per store). `plrc export` reads `config`
 * (`model: { depth, width }`) and `num_batches_tracked` from here.
 *
 * @module
 */
import { join } from "node:path";
import type { Tensor } from "../gpu/tensor.ts";
import {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsMetadata,
  SafetensorsError,
  type StInput,
  type StTensor,
} from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/torch_pth.ts";
import { hwioToOihw, isTrainable, oihwToHwio, type ParamStore } from "../nn/params.ts";
import { VERSION } from "../version.ts";

/** The value of the `plrc.format` metadata key. */
export const CHECKPOINT_FORMAT = "plrc-checkpoint/1";

/** Raised for unreadable, malformed or mismatched checkpoints; the message names the file and the entry. */
export class CheckpointError extends Error {
  /** `message` names the file and what is wrong with it. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** What a checkpoint holds. */
export interface CheckpointContent {
  /** Parameter stores by name (e.g. `online`, `target`); names are letters, digits, `_`, `-`, `.`. */
  stores: Record<string, ParamStore>;
  /** Extra tensors by name. */
  tensors: Record<string, Tensor>;
  /** JSON-serialisable values (no bigints); keys must not start with `plrc.`. */
  meta: Record<string, unknown>;
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

function checkNames(stores: Record<string, unknown>, meta?: Record<string, unknown>): void {
  for (const s of Object.keys(stores)) {
    if (!NAME_RE.test(s)) throw new CheckpointError(`invalid store name "${s}" (letters, digits, _ - . only)`);
  }
  for (const k of Object.keys(meta ?? {})) {
    if (k.startsWith("plrc.")) throw new CheckpointError(`metadata key "${k}" is reserved`);
  }
}

/** The file name of the periodic checkpoint at `step` (`step_00001234.safetensors`, as the trainer writes). */
export function checkpointName(step: number): string {
  return `step_${String(step).padStart(8, "0")}.safetensors`;
}

/** The name of the checkpoint the trainer rewrites at every save. */
export const LAST_CHECKPOINT = "last.safetensors";

const PERIODIC = /^(?:step_|checkpoint-)(\d+)\.safetensors$/;

/**
 * The newest checkpoint in `dir`: `last.safetensors` when present (it is rewritten at every save), else the
 * periodic `step_N.safetensors` with the highest N; null when there is none (or no such folder). Temporary
 * files of interrupted writes (`*.tmp-*`) are never returned.
 */
export async function latestCheckpoint(dir: string): Promise<string | null> {
  let best: { step: number; name: string } | null = null;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      if (e.name === LAST_CHECKPOINT) return join(dir, e.name);
      const m = PERIODIC.exec(e.name);
      if (m && (!best || Number(m[1]) > best.step)) best = { step: Number(m[1]), name: e.name };
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return best ? join(dir, best.name) : null;
}

const TENSOR_DTYPE = { f32: "F32", f16: "F16", i32: "I32", u32: "I64" } as const;

/** Reads all entries of one store's flat buffers into safetensors inputs (PyTorch layout). */
async function storeTensors(name: string, store: ParamStore, out: Record<string, StInput>): Promise<void> {
  const flat = store.flat();
  const params = (await flat.params.read()) as Float32Array;
  const momentum = (await flat.momentum.read()) as Float32Array;
  const stats = (await flat.stats.read()) as Float32Array;
  for (const [entry, e] of store.entries) {
    const torch = (buf: Float32Array) => {
      const v = buf.subarray(e.offset, e.offset + e.numel);
      return e.spec.kind === "conv" ? hwioToOihw(v, e.spec.shape) : v.slice();
    };
    const shape = [...e.spec.shape];
    if (isTrainable(e.spec.kind)) {
      out[`params/${name}/${entry}`] = { dtype: "F32", shape, data: torch(params) };
      out[`momentum/${name}/${entry}`] = { dtype: "F32", shape, data: torch(momentum) };
    } else {
      out[`stats/${name}/${entry}`] = { dtype: "F32", shape, data: torch(stats) };
    }
  }
}

/**
 * Saves a checkpoint to `path` atomically. Reads the stores and tensors from the GPU (call between steps;
 * the reads wait for submitted work).
 */
export async function saveCheckpoint(path: string, content: CheckpointContent): Promise<void> {
  checkNames(content.stores, content.meta);
  const tensors: Record<string, StInput> = {};
  for (const [name, store] of Object.entries(content.stores)) await storeTensors(name, store, tensors);
  for (const [name, t] of Object.entries(content.tensors)) {
    const host = await t.read();
    const shape = [...t.shape];
    tensors[`tensor/${name}`] = t.dtype === "u32"
      ? { dtype: "I64", shape, data: BigInt64Array.from(host as Uint32Array, (x) => BigInt(x)) }
      : { dtype: TENSOR_DTYPE[t.dtype], shape, data: host } as StInput;
  }
  const metadata: Record<string, string> = { "plrc.format": CHECKPOINT_FORMAT, "plrc.version": VERSION };
  for (const [k, v] of Object.entries(content.meta)) {
    let text: string | undefined;
    try {
      text = JSON.stringify(v);
    } catch (e) {
      throw new CheckpointError(`metadata "${k}" is not JSON-serialisable: ${(e as Error).message}`);
    }
    if (text === undefined) throw new CheckpointError(`metadata "${k}" is not JSON-serialisable`);
    metadata[k] = text;
  }
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** A checkpoint read on the host only (no GPU): for inspection and `plrc export`. */
export interface CheckpointFile {
  /** The tensors by name. */
  tensors: Map<string, StTensor>;
  /** The caller's metadata, parsed. */
  meta: Record<string, unknown>;
  /** The plrc version that wrote it. */
  version: string;
}

/** Reads and validates a checkpoint file without touching the GPU. */
export async function readCheckpointFile(path: string): Promise<CheckpointFile> {
  const file = await readOrExplain(path, readSafetensors);
  return { tensors: file.tensors, ...checkpointMeta(path, file.metadata) };
}

/** A checkpoint's metadata and version only (its header; no tensor data is read). */
export async function readCheckpointMeta(path: string): Promise<Omit<CheckpointFile, "tensors">> {
  return checkpointMeta(path, await readOrExplain(path, readSafetensorsMetadata));
}

async function readOrExplain<T>(path: string, read: (path: string) => Promise<T>): Promise<T> {
  try {
    return await read(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(`not a readable checkpoint: ${e.message}`);
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${path}: no such file`);
    throw e;
  }
}

function checkpointMeta(path: string, md: Record<string, string>): Omit<CheckpointFile, "tensors"> {
  if (md["plrc.format"] !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      `${path}: not a plrc checkpoint (metadata plrc.format is ${
        JSON.stringify(md["plrc.format"] ?? null)
      }, expected "${CHECKPOINT_FORMAT}")`,
    );
  }
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(md)) {
    if (k.startsWith("plrc.")) continue;
    try {
      meta[k] = JSON.parse(v);
    } catch {
      throw new CheckpointError(`${path}: metadata "${k}" is not valid JSON`);
    }
  }
  return { meta, version: md["plrc.version"] ?? "unknown" };
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Loads a checkpoint into `stores` and `tensors` (which must match it exactly: the same store names, entry
 * names, shapes and tensor dtypes; nothing missing, nothing extra) and returns its metadata. The whole
 * file is read and validated before anything is written to the GPU, so on any error the GPU state is
 * unchanged.
 *
 * @throws {CheckpointError} naming the file and the first offending entry.
 */
export async function loadCheckpoint(
  path: string,
  target: { stores: Record<string, ParamStore>; tensors: Record<string, Tensor> },
): Promise<Record<string, unknown>> {
  checkNames(target.stores);
  const file = await readCheckpointFile(path);
  const fail = (msg: string): never => {
    throw new CheckpointError(`${path}: ${msg}`);
  };
  const expected = new Map<string, { shape: readonly number[]; dtype: string }>();
  for (const [name, store] of Object.entries(target.stores)) {
    for (const [entry, e] of store.entries) {
      const shape = e.spec.shape;
      if (isTrainable(e.spec.kind)) {
        expected.set(`params/${name}/${entry}`, { shape, dtype: "F32" });
        expected.set(`momentum/${name}/${entry}`, { shape, dtype: "F32" });
      } else {
        expected.set(`stats/${name}/${entry}`, { shape, dtype: "F32" });
      }
    }
  }
  for (const [name, t] of Object.entries(target.tensors)) {
    expected.set(`tensor/${name}`, { shape: t.shape, dtype: TENSOR_DTYPE[t.dtype] });
  }
  for (const [name, want] of expected) {
    const got = file.tensors.get(name);
    if (!got) fail(`entry "${name}" is missing`);
    else if (!sameShape(got.shape, want.shape)) {
      fail(`entry "${name}" has shape [${got.shape}], expected [${want.shape}]`);
    } else if (got.dtype !== want.dtype) fail(`entry "${name}" has dtype ${got.dtype}, expected ${want.dtype}`);
  }
  const extra = [...file.tensors.keys()].filter((k) => !expected.has(k));
  if (extra.length) {
    fail(
      `unexpected entries (the model or the tensors differ from the checkpoint's): ${
        extra.slice(0, 5).map((k) => `"${k}"`).join(", ")
      }${extra.length > 5 ? `, … (${extra.length} in all)` : ""}`,
    );
  }

  // everything is validated: build the host images, then write
  const uploads: (() => void)[] = [];
  for (const [name, store] of Object.entries(target.stores)) {
    const params = new Float32Array(store.trainableSize);
    const momentum = new Float32Array(store.trainableSize);
    const stats = new Float32Array(store.statsSize);
    for (const [entry, e] of store.entries) {
      const put = (dst: Float32Array, key: string) => {
        const t = file.tensors.get(key)!;
        const v = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, e.numel);
        dst.set(e.spec.kind === "conv" ? oihwToHwio(v, e.spec.shape) : v, e.offset);
      };
      if (isTrainable(e.spec.kind)) {
        put(params, `params/${name}/${entry}`);
        put(momentum, `momentum/${name}/${entry}`);
      } else put(stats, `stats/${name}/${entry}`);
    }
    const flat = store.flat();
    uploads.push(
      () => flat.params.upload(params),
      () => flat.momentum.upload(momentum),
      () => flat.stats.upload(stats),
    );
  }
  for (const [name, t] of Object.entries(target.tensors)) {
    const st = file.tensors.get(`tensor/${name}`)!;
    const b = st.bytes;
    let host: Float32Array | Uint16Array | Int32Array | Uint32Array;
    switch (t.dtype) {
      case "f32":
        host = new Float32Array(b.buffer, b.byteOffset, t.numel);
        break;
      case "f16":
        host = new Uint16Array(b.buffer, b.byteOffset, t.numel);
        break;
      case "i32":
        host = new Int32Array(b.buffer, b.byteOffset, t.numel);
        break;
      case "u32": {
        const v = new BigInt64Array(b.buffer, b.byteOffset, t.numel);
        host = new Uint32Array(t.numel);
        for (let i = 0; i < v.length; i++) {
          if (v[i] < 0n || v[i] > 0xffffffffn) fail(`entry "tensor/${name}": value ${v[i]} is out of u32 range`);
          host[i] = Number(v[i]);
        }
        break;
      }
    }
    uploads.push(() => t.upload(host));
  }
  for (const u of uploads) u();
  return file.meta;
}
