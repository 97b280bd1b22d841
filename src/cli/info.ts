/**
 * `plrc info [--json]`: the adapter, its backend, features and the limits plrc relies on.
 *
 * @module
 */
import { getGpu } from "../gpu/device.ts";
import { parseOptions } from "./usage.ts";
import { formatBytes } from "../gpu/device.ts";
import { VERSION } from "../version.ts";

export const INFO_HELP = `plrc info [--json]

Prints the WebGPU adapter plrc will use: description, backend (vulkan/gl/other), adapter class
(cpu for Mesa llvmpipe/lavapipe, gpu otherwise), features and limits.

  --json     one JSON object on stdout
  -h, --help this text

DENO_WEBGPU_BACKEND=vulkan|gl selects the backend. Unset, plrc asks for vulkan alone on Linux where a
Vulkan driver is installed (so GL is never loaded; its exit handler could abort the process), else
for wgpu's default, every backend.`;

/** Runs `plrc info`. */
export async function infoCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(
    argv,
    { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    INFO_HELP,
  );
  if (values.help) return console.log(INFO_HELP), 0;
  const gpu = await getGpu();
  const s = gpu.summary;
  const out = {
    plrc: VERSION,
    deno: Deno.version.deno,
    adapter: s.description,
    backend: s.backend,
    adapterClass: s.adapterClass,
    requestedBackend: s.requestedBackend,
    backendSelection: s.backendSelection,
    isFallbackAdapter: s.isFallbackAdapter,
    vendor: s.vendor,
    architecture: s.architecture,
    device: s.device,
    subgroupMinSize: s.subgroupMinSize,
    subgroupMaxSize: s.subgroupMaxSize,
    shaderF16: gpu.hasF16,
    timestampQuery: gpu.hasTimestamps,
    features: s.features,
    limits: s.limits,
  };
  if (values.json) {
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const bytesKeys = new Set([
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxUniformBufferBindingSize",
    "maxComputeWorkgroupStorageSize",
  ]);
  console.log(`plrc ${VERSION} on Deno ${Deno.version.deno}`);
  console.log(`adapter      ${s.description}${s.isFallbackAdapter ? " (fallback adapter)" : ""}`);
  const how = s.backendSelection === "auto"
    ? " (chosen by plrc: a Vulkan driver is installed, so GL is not loaded; DENO_WEBGPU_BACKEND overrides)"
    : s.requestedBackend
    ? ` (DENO_WEBGPU_BACKEND=${s.requestedBackend})`
    : "";
  console.log(`backend      ${s.backend}${how}`);
  console.log(`class        ${s.adapterClass} (kernel variants chosen for it)`);
  console.log(`shader-f16   ${gpu.hasF16 ? "yes" : "no"}`);
  console.log(`timestamps   ${gpu.hasTimestamps ? "yes" : "no"}`);
  console.log(`subgroups    ${s.subgroupMinSize ?? "?"}..${s.subgroupMaxSize ?? "?"}`);
  console.log(`features     ${s.features.join(", ")}`);
  console.log("limits");
  for (const [k, v] of Object.entries(s.limits)) {
    console.log(`  ${k.padEnd(36)} ${bytesKeys.has(k) ? `${v} (${formatBytes(v)})` : v}`);
  }
  if (s.backend === "gl") {
    console.log(
      "\nnote: GL compiles kernels slowly; `apt-get install -y mesa-vulkan-drivers libvulkan1` makes them 10-30x faster.",
    );
  }
  return 0;
}
