/**
 * Adapter and device acquisition.
 *
 * The device is requested with the adapter's own limits (WebGPU's defaults are far lower, e.g. 128 MiB
 * storage bindings on the CPU adapters are only reachable when asked for) and with the optional features
 * plrc can use (`shader-f16`, `timestamp-query`).
 *
 * @module
 */

/** Which driver stack the adapter sits on. Deno does not report it, so it is inferred. */
export type Backend = "vulkan" | "gl" | "other";

/** The adapter kinds plrc chooses kernel variants for. */
export type AdapterClass = "cpu" | "gpu";

/** A summary of the adapter, as printed by `plrc info`. */
export interface AdapterSummary {
  /** The adapter's own description string. */
  description: string;
  /** Vendor name reported by the adapter. */
  vendor: string;
  /** Architecture name reported by the adapter. */
  architecture: string;
  /** Device name reported by the adapter. */
  device: string;
  /** The graphics API the adapter runs on. */
  backend: Backend;
  /** The value of `DENO_WEBGPU_BACKEND` when the adapter was requested (set by the user, or by {@link autoBackend}), or null. */
  requestedBackend: string | null;
  /** How the backend was chosen: `env` (the user's DENO_WEBGPU_BACKEND), `auto` ({@link autoBackend}) or `default` (wgpu's: every backend). */
  backendSelection: "env" | "auto" | "default";
  /** The adapter is a fallback (software) adapter by WebGPU's own flag. */
  isFallbackAdapter: boolean;
  /** `cpu` for software rasterisers (llvmpipe/lavapipe/SwiftShader/WARP), else `gpu`. */
  adapterClass: AdapterClass;
  /** Smallest subgroup size, where the adapter reports one. */
  subgroupMinSize: number | null;
  /** Largest subgroup size, where the adapter reports one. */
  subgroupMaxSize: number | null;
  /** Features the device was granted. */
  features: string[];
  /** The device limits plrc reads, by WebGPU limit name. */
  limits: Record<string, number>;
}

/** The limits plrc relies on; `plrc info` shows them. */
export const IMPORTANT_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxBindGroups",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
] as const;

const OPTIONAL_FEATURES: GPUFeatureName[] = ["shader-f16", "timestamp-query"];

/** Thrown when no WebGPU adapter can be had, with what to do about it. */
export class NoAdapterError extends Error {
  /** `detail` says why no adapter could be had. */
  constructor(detail: string) {
    super(
      `no WebGPU adapter is available (${detail}).\n` +
        "  - On a CPU-only Linux machine WebGPU comes from Mesa: OpenGL (llvmpipe) works out of the box;\n" +
        "    `apt-get install -y mesa-vulkan-drivers libvulkan1` adds lavapipe Vulkan (kernels compile 10-30x faster).\n" +
        "  - DENO_WEBGPU_BACKEND selects a backend (vulkan, gl); an empty or unknown value gives no adapter.\n" +
        "  - On an NVIDIA machine the Vulkan loader (libvulkan1) and the driver's ICD must be installed.",
    );
    this.name = "NoAdapterError";
  }
}

/** Thrown when the device runs out of memory while `what` allocates its buffers ({@link withMemoryCheck}). */
export class OutOfMemoryError extends Error {
  /** `what` is the allocation that failed, `liveBytes` plrc's buffers at that moment, `hint` what to lower. */
  constructor(what: string, liveBytes: number, detail: string, hint: string = TRAINING_MEMORY_HINT) {
    super(
      `the GPU ran out of memory while ${what} (plrc's buffers had reached ${formatBytes(liveBytes)}: ${detail}); ` +
        hint,
    );
    this.name = "OutOfMemoryError";
  }
}

/** What to lower when an evaluation's network does not fit. */
export const EVAL_MEMORY_HINT =
  "use a smaller evaluation batch (plrc eval --batch, detect) or resolution (--resolution)";

/** What to lower when the training step does not fit. */
export const TRAINING_MEMORY_HINT = "use more micro-batches (train.accumulate), a smaller batch (train.batchSize), " +
  "resolution (data.resolution) or model width (model.width)";

/**
 * Runs `allocate` (which creates buffers) inside an out-of-memory error scope: a device that cannot hold
 * them gives one {@link OutOfMemoryError} naming what to lower, instead of invalid buffers and a stream of
 * validation errors on every later use.
 */
export async function withMemoryCheck<T>(
  gpu: Pick<Gpu, "device" | "memory">,
  what: string,
  allocate: () => Promise<T>,
  hint: string = TRAINING_MEMORY_HINT,
): Promise<T> {
  gpu.device.pushErrorScope("out-of-memory");
  // the scope is popped whatever happens; the device's out-of-memory verdict wins over an allocation error
  const result = await allocate().then((value) => ({ value }), (error) => ({ error }));
  const err = await gpu.device.popErrorScope();
  if (err) throw new OutOfMemoryError(what, gpu.memory.liveBytes, err.message, hint);
  if ("error" in result) throw result.error;
  return result.value;
}

/** Thrown when a buffer or binding would exceed a device limit. */
export class LimitError extends Error {
  /** `what` would need `bytes`, more than the device's `limitName` allows (`limit`). */
  constructor(what: string, bytes: number, limitName: string, limit: number) {
    super(
      `${what} needs ${formatBytes(bytes)} but the adapter's ${limitName} is ${formatBytes(limit)}; ` +
        "use a smaller batch (train.batchSize), resolution (data.resolution), model width (model.width) or number " +
        "of points (data.points), or an adapter with larger limits",
    );
    this.name = "LimitError";
  }
}

/** "1.5 MiB"-style size for messages. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) v /= 1024, i++;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Software adapters run kernels on the CPU; they prefer different kernel shapes (e.g. `kernels/wgsl/gemm.ts`). */
function classify(info: GPUAdapterInfo, fallback: boolean): AdapterClass {
  const d = `${info.description} ${info.vendor} ${info.device}`.toLowerCase();
  if (fallback || /llvmpipe|lavapipe|swiftshader|warp|softpipe/.test(d)) return "cpu";
  return "gpu";
}

/**
 * Deno does not expose the backend. Mesa's two CPU adapters report the same description; Vulkan has
 * `shader-f16` and subgroup sizes 8/8, GL has neither f16 nor equal subgroup bounds (4/128).
 */
function inferBackend(
  info: GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number },
  features: Set<string>,
  requested: string | null,
): Backend {
  if (requested) {
    const r = requested.toLowerCase();
    if (r === "vulkan" || r === "vk") return "vulkan";
    if (r === "gl" || r === "gles" || r === "opengl") return "gl";
    if (!r.includes(",")) return "other";
  }
  if (features.has("shader-f16")) return "vulkan";
  if (info.subgroupMinSize === 4 && info.subgroupMaxSize === 128) return "gl";
  return "other";
}

function readEnv(name: string): string | null {
  try {
    return Deno.env.get(name) ?? null;
  } catch {
    return null; // no --allow-env: treat as unset
  }
}

/** An acquired device plus everything plrc needs to know about its adapter. */
export interface Gpu {
  /** The WebGPU device. */
  device: GPUDevice;
  /** The adapter the device came from. */
  adapter: GPUAdapter;
  /** What the adapter is, for logs and kernel choices. */
  summary: AdapterSummary;
  /** `shader-f16` was granted. */
  hasF16: boolean;
  /** `timestamp-query` was granted. */
  hasTimestamps: boolean;
  /** Rejects buffers that the device cannot hold or bind, with a message naming `what`. */
  checkBufferSize(what: string, bytes: number, binding?: boolean): void;
  /** Bytes in live buffers made through `device.createBuffer`, and their high-water mark. */
  memory: { liveBytes: number; peakBytes: number };
}

/** Counts the bytes of every buffer the device makes and destroys (WebGPU has no memory query). */
function trackMemory(device: GPUDevice): { liveBytes: number; peakBytes: number } {
  const memory = { liveBytes: 0, peakBytes: 0 };
  const create = device.createBuffer.bind(device);
  device.createBuffer = (desc: GPUBufferDescriptor): GPUBuffer => {
    const buffer = create(desc);
    memory.liveBytes += desc.size;
    memory.peakBytes = Math.max(memory.peakBytes, memory.liveBytes);
    const destroy = buffer.destroy.bind(buffer);
    let live = true;
    buffer.destroy = () => {
      if (live) memory.liveBytes -= desc.size;
      live = false;
      destroy();
    };
    return buffer;
  };
  return memory;
}

let shared: Promise<Gpu> | null = null;

/** Where the Vulkan loader looks for driver manifests on Linux (besides VK_DRIVER_FILES / VK_ICD_FILENAMES). */
const ICD_DIRS = ["/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/share/vulkan/icd.d"];
/** Where a manifest's bare library name (e.g. libGLX_nvidia.so.0) is looked for, after LD_LIBRARY_PATH. */
const LIB_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/lib64",
  "/lib",
];

/**
 * The backend to ask for when DENO_WEBGPU_BACKEND is unset: `vulkan` on Linux when a Vulkan driver is
 * installed (a driver manifest whose library exists, and the loader), else null (wgpu's default, every
 * backend). Why: with every backend, wgpu brings up GL (libEGL and Mesa's whole GL driver) beside Vulkan
 * even when it then picks the Vulkan adapter, as it does wherever one exists. libglvnd's libEGL frees every
 * thread's EGL state in its exit handler, and a runtime thread that touched EGL may be exiting at that moment
 * and free its own: glibc's "double free or corruption" abort after every test had passed (a core dump of
 * this one: the main thread in libEGL's fini under exit(), another thread in __nptl_deallocate_tsd). With
 * Vulkan alone EGL is never loaded. `fs`/`env` are injectable for tests; any error means null.
 */
export function autoBackend(
  env: (name: string) => string | undefined = (n) => readEnv(n) ?? undefined,
  fs: { readDir(dir: string): string[]; readText(path: string): string; exists(path: string): boolean } = {
    readDir: (d) => [...Deno.readDirSync(d)].map((e) => e.name),
    readText: (p) => Deno.readTextFileSync(p),
    exists: (p) => {
      try {
        Deno.statSync(p);
        return true;
      } catch {
        return false;
      }
    },
  },
  os: string = Deno.build.os,
): "vulkan" | null {
  if (os !== "linux") return null;
  const libDirs = [...(env("LD_LIBRARY_PATH") ?? "").split(":").filter(Boolean), ...LIB_DIRS];
  const findLib = (lib: string) => lib.includes("/") ? fs.exists(lib) : libDirs.some((d) => fs.exists(`${d}/${lib}`));
  if (!findLib("libvulkan.so.1")) return null;
  const listed = (env("VK_DRIVER_FILES") ?? env("VK_ICD_FILENAMES") ?? "").split(":").filter(Boolean);
  const manifests = listed.length ? listed : ICD_DIRS.flatMap((d) => {
    try {
      return fs.readDir(d).filter((f) => f.endsWith(".json")).map((f) => `${d}/${f}`);
    } catch {
      return [];
    }
  });
  for (const m of manifests) {
    try {
      const lib = JSON.parse(fs.readText(m))?.ICD?.library_path;
      if (typeof lib !== "string") continue;
      // a relative path is relative to the manifest's folder
      const path = lib.includes("/") && !lib.startsWith("/") ? `${m.slice(0, m.lastIndexOf("/"))}/${lib}` : lib;
      if (findLib(path)) return "vulkan";
    } catch {
      // an unreadable manifest counts as none
    }
  }
  return null;
}

/** Requests the adapter and a device with the adapter's limits and plrc's optional features. */
export async function requestGpu(): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) {
    throw new NoAdapterError("navigator.gpu is missing in this runtime");
  }
  let requested = readEnv("DENO_WEBGPU_BACKEND");
  if (requested !== null && requested.trim() === "") {
    throw new NoAdapterError("DENO_WEBGPU_BACKEND is set but empty");
  }
  let selection: AdapterSummary["backendSelection"] = requested === null ? "default" : "env";
  if (requested === null) {
    // wgpu reads the variable when this process first requests an adapter, so it must be set now
    const auto = autoBackend();
    if (auto) {
      try {
        Deno.env.set("DENO_WEBGPU_BACKEND", auto);
        requested = auto, selection = "auto";
      } catch {
        // no --allow-env: every backend, as before
      }
    }
  }
  quietRuntimeDir();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new NoAdapterError(
      selection === "auto"
        ? "a Vulkan driver is installed but gave no adapter; set DENO_WEBGPU_BACKEND=gl (or vulkan,gl) to try OpenGL"
        : requested
        ? `DENO_WEBGPU_BACKEND=${requested} found none`
        : "requestAdapter() returned null",
    );
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") requiredLimits[key] = v;
  }
  // Iterating a GPUSupportedLimits object is not guaranteed to list its getters; read the known ones too.
  for (const key of IMPORTANT_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof v === "number") requiredLimits[key] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  device.addEventListener("uncapturederror", (e) => {
    console.error(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  const info = adapter.info as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    isFallbackAdapter?: boolean;
  };
  const fallback = Boolean(
    info.isFallbackAdapter ?? (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  );
  const featureSet = new Set<string>([...adapter.features].map(String));
  const limits: Record<string, number> = {};
  for (const key of IMPORTANT_LIMITS) {
    limits[key] = (device.limits as unknown as Record<string, number>)[key];
  }
  const summary: AdapterSummary = {
    description: info.description || "(no description)",
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    backend: inferBackend(info, featureSet, requested),
    requestedBackend: requested,
    backendSelection: selection,
    isFallbackAdapter: fallback,
    adapterClass: classify(info, fallback),
    subgroupMinSize: info.subgroupMinSize ?? null,
    subgroupMaxSize: info.subgroupMaxSize ?? null,
    features: [...featureSet].sort(),
    limits,
  };
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  const maxBuffer = device.limits.maxBufferSize;
  const memory = trackMemory(device);
  return {
    memory,
    device,
    adapter,
    summary,
    hasF16: features.includes("shader-f16"),
    hasTimestamps: features.includes("timestamp-query"),
    checkBufferSize(what, bytes, binding = true) {
      if (bytes > maxBuffer) throw new LimitError(what, bytes, "maxBufferSize", maxBuffer);
      if (binding && bytes > maxBinding) {
        throw new LimitError(what, bytes, "maxStorageBufferBindingSize", maxBinding);
      }
    },
  };
}

/** One device per process, shared by the library, the CLI and the tests. */
export function getGpu(): Promise<Gpu> {
  if (!shared) {
    shared = requestGpu();
    shared.then(
      // Destroy the device while the runtime is still whole: left to process teardown, Mesa's GL driver
      // sometimes corrupted the heap at exit (a glibc abort after every test had passed, ~1 run in 4). The
      // abort that remained came from libEGL's exit handler (see autoBackend), which GL runs still load.
      (gpu) => globalThis.addEventListener("unload", () => gpu.device.destroy()),
      () => (shared = null),
    );
  }
  return shared;
}

/**
 * Mesa's window-system code prints "XDG_RUNTIME_DIR is invalid or not set" (twice) when the process has no
 * runtime directory, as in containers and CI, though plrc never opens a window. Where it is unset on Linux,
 * point it at a private directory of this user's (created 0700 once, reused) before the first adapter.
 */
function quietRuntimeDir(): void {
  if (Deno.build.os !== "linux") return;
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR")) return;
    const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/plrc-runtime-${Deno.uid() ?? "user"}`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // no --allow-env or --allow-write: the message stays, nothing else changes
  }
}
