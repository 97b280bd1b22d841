/**
 * Import of a torchvision-layout ResNet backbone from PyTorch: to evaluate an outside backbone
 * (`plrc eval --ckpt resnet50.pth`, ImageNet-supervised weights say) under the same protocols, or to start
 * pre-training from one (`plrc pretrain --init FILE`).
 *
 * Read: a `.pth` written by `torch.save` (a state dict, or a dict holding one under `state_dict` or
 * `model`, as MoCo, mmdet and plrc's own exports do) or a `.safetensors` file. The backbone may sit under
 * a prefix (`module.encoder_q.`, `backbone.`, …): the first name in the file that ends in `conv1.weight`
 * with a `layer1.0.conv1.weight` beside it fixes it. Depth and width are read off the tensors (bottleneck
 * blocks or not, blocks per stage, the stem's channels), then every entry is checked against torchvision's
 * ResNet of that shape (the export's check): anything missing, misshapen or unexpected is an error that
 * names it. `fc` is ignored; BN running statistics are kept.
 *
 * @module
 */
import { readSafetensors, toFloat32 } from "../io/safetensors.ts";
import { PthTensor, readPth } from "../io/torch_pth.ts";
import type { ResNetConfig } from "../models/resnet.ts";
import { type HostTensor, torchvisionStateDict } from "./export.ts";

/** A backbone read from a PyTorch file. */
export interface ImportedBackbone {
  /** The file's prefix before torchvision's names ("" when none). */
  prefix: string;
  /** The ResNet the tensors form. */
  model: ResNetConfig;
  /** torchvision name → values in PyTorch layout (conv weights OIHW), `fc` and counters left out. */
  tensors: Map<string, Float32Array>;
}

/** Raised when a file does not hold a usable torchvision ResNet. */
export class ImportError extends Error {
  /** `message` says why the file cannot be used. */
  constructor(message: string) {
    super(message);
    this.name = "ImportError";
  }
}

/** Reads `path` (.pth/.pt or .safetensors) as a torchvision backbone; see the module notes. */
export async function readTorchvisionBackbone(path: string): Promise<ImportedBackbone> {
  const raw = await readTensors(path);
  try {
    return torchvisionBackbone(raw);
  } catch (e) {
    throw new ImportError(`${path}: ${(e as Error).message}`);
  }
}

/** The backbone in a name → tensor map (the core of {@link readTorchvisionBackbone}, without a file). */
export function torchvisionBackbone(raw: Map<string, HostTensor>): ImportedBackbone {
  const prefix = findPrefix([...raw.keys()]);
  const model = inferResNet(raw, prefix);
  // the export's check: every entry of that ResNet present with its shape, nothing else but fc
  const sd = torchvisionStateDict(raw, { model, prefix, numBatchesTracked: 0 });
  const tensors = new Map<string, Float32Array>();
  for (const [name, t] of sd) {
    if (name.startsWith("fc.") || name.endsWith(".num_batches_tracked")) continue;
    tensors.set(name, t.data as Float32Array);
  }
  return { prefix, model, tensors };
}

/** The prefix of the first `…conv1.weight` that has a `…layer1.0.conv1.weight` beside it. */
export function findPrefix(names: string[]): string {
  const all = new Set(names);
  for (const n of names) {
    if (!n.endsWith("conv1.weight") || n.includes("layer")) continue;
    const p = n.slice(0, -"conv1.weight".length);
    if (all.has(`${p}layer1.0.conv1.weight`)) return p;
  }
  const some = names.slice(0, 4).join(", ");
  throw new Error(
    `no torchvision ResNet in it (no conv1.weight with layer1.0.conv1.weight beside it; names: ${some}, …)`,
  );
}

/** Depth and width of the ResNet under `prefix`: bottleneck blocks or not, blocks per stage, stem channels. */
export function inferResNet(raw: Map<string, HostTensor>, prefix: string): ResNetConfig {
  const blocks = [1, 2, 3, 4].map((l) => {
    let n = 0;
    while (raw.has(`${prefix}layer${l}.${n}.conv1.weight`)) n++;
    return n;
  });
  const bottleneck = raw.has(`${prefix}layer1.0.conv3.weight`);
  const key = blocks.join(",");
  const depth = key === "2,2,2,2" && !bottleneck ? 18 : key === "3,4,6,3" ? (bottleneck ? 50 : 34) : null;
  if (depth === null) {
    throw new Error(
      `blocks per stage ${key} (${bottleneck ? "bottleneck" : "basic"}): plrc builds ResNet-18, 34 and 50 only`,
    );
  }
  const stem = raw.get(`${prefix}conv1.weight`)!;
  return { depth, width: stem.shape[0] / 64 };
}

/**
 * `sets` with the model keys an imported backbone needs (`model.depth`, `model.width`); one the user set
 * to another value is an error naming both.
 */
export function withModel(sets: string[], model: ResNetConfig): string[] {
  const want: Record<string, number> = { "model.depth": model.depth, "model.width": model.width };
  for (const s of sets) {
    const eq = s.indexOf("="), key = s.slice(0, eq).trim();
    if (key in want && Number(s.slice(eq + 1)) !== want[key]) {
      throw new ImportError(`--set ${s}: the imported backbone is ResNet-${model.depth} ×${model.width}`);
    }
  }
  return [...sets, ...Object.entries(want).map(([k, v]) => `${k}=${v}`)];
}

/** Every tensor of a .pth or .safetensors file as float32 (int64 counters kept as int64). */
async function readTensors(path: string): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  if (path.endsWith(".safetensors")) {
    const { tensors } = await readSafetensors(path).catch((e) => {
      throw new ImportError(`${path}: ${(e as Error).message}`);
    });
    for (const [name, t] of tensors) {
      if (t.dtype === "I64") out.set(name, { shape: t.shape, data: new BigInt64Array(t.bytes.buffer) });
      else {
        try {
          out.set(name, { shape: t.shape, data: toFloat32(t) });
        } catch {
          // a dtype the backbone cannot hold: left out, so the check names it if it was needed
        }
      }
    }
    return out;
  }
  const file = await readPth(path).catch((e) => {
    throw new ImportError(`${(e as Error).message}`);
  });
  let sd: unknown = file.value;
  for (const k of ["state_dict", "model"]) {
    const inner = get(sd, k);
    if (inner !== undefined && !(inner instanceof PthTensor)) sd = inner;
  }
  if (!(sd instanceof Map) && !(sd && typeof sd === "object")) {
    throw new ImportError(`${path}: holds no state dict (a mapping of names to tensors)`);
  }
  const entries = sd instanceof Map ? [...sd.entries()] : Object.entries(sd as Record<string, unknown>);
  for (const [name, t] of entries) {
    if (!(t instanceof PthTensor) || typeof name !== "string") continue;
    if (t.dtype === "I64") out.set(name, { shape: t.shape, data: t.data as BigInt64Array });
    else if (t.dtype === "F32" || t.dtype === "F64") {
      out.set(name, { shape: t.shape, data: Float32Array.from(t.data as ArrayLike<number>) });
    } else if (t.dtype === "F16") out.set(name, { shape: t.shape, data: halfToFloat(t.data as Uint16Array) });
  }
  return out;
}

function get(v: unknown, key: string): unknown {
  if (v instanceof Map) return v.get(key);
  if (v && typeof v === "object") return (v as Record<string, unknown>)[key];
  return undefined;
}

/** IEEE half bits to float32. */
function halfToFloat(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
    out[i] = e === 0
      ? s * 2 ** -14 * (f / 1024)
      : e === 31
      ? (f ? NaN : s * Infinity)
      : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return out;
}
