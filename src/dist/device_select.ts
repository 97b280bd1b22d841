/**
 * Which GPU a rank uses. Deno's `navigator.gpu.requestAdapter()` has no device index: wgpu-core enumerates
 * every adapter and returns the first after a stable sort by device type (discrete before integrated for the
 * default/high-performance preference), so on a node of identical GPUs every process gets the first one that
 * Vulkan enumerates. The choice has to be made below WebGPU, by the environment the Vulkan loader and its
 * layers read when the first adapter is requested (docs/distributed.md has the sources and what was measured):
 *
 * - one GPU per container (Kubernetes' device plugin, `docker --gpus device=N`): nothing to do, the
 *   container sees one GPU;
 * - a bare multi-GPU node: Mesa's device-select layer (`VK_LAYER_MESA_device_select`, an implicit layer
 *   shipped with mesa-vulkan-drivers) moves the device whose PCI address matches `DRI_PRIME=pci-D_B_S_F` to
 *   the front and, with `MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE=1`, hides the others. GPUs of different
 *   models can also be told apart by `vendor:device` (`MESA_VK_DEVICE_SELECT`, the loader's
 *   `VK_LOADER_DEVICE_SELECT`), identical ones cannot.
 *
 * Setting these with `Deno.env.set` before the process's first `requestAdapter` is enough (measured: the
 * layer reads `MESA_VK_DEVICE_SELECT` set that way).
 *
 * @module
 */

/** A GPU on the PCI bus, from sysfs. */
export interface PciGpu {
  /** `domain:bus:slot.function`, e.g. `0000:18:00.0`. */
  address: string;
  /** Hexadecimal PCI vendor id without `0x`, e.g. `10de`. */
  vendor: string;
  /** Hexadecimal PCI device id without `0x`, e.g. `2335`. */
  device: string;
}

/** How a rank gets its GPU. */
export interface RankDevice {
  /** `"container"`: the process sees at most one GPU; `"pci"`: chosen by PCI address; `"none"`: no choice made. */
  how: "container" | "pci" | "none";
  /** The GPU chosen (for `"pci"`). */
  gpu: PciGpu | null;
  /** Variables to set before the first adapter request. */
  env: Record<string, string>;
  /** Whether another rank on this machine gets the same GPU. */
  shared: boolean;
  /** One line for the log. */
  note: string;
}

/** The local rank and rank count from the launcher's variables (Hydra, Open MPI, Slurm), or null. */
export function localRankFromEnv(env: Record<string, string | undefined>): { rank: number; size: number } | null {
  const pairs: [string, string][] = [
    ["MPI_LOCALRANKID", "MPI_LOCALNRANKS"],
    ["OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"],
    ["SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"],
  ];
  for (const [r, s] of pairs) {
    const rank = env[r], size = env[s];
    if (rank !== undefined && /^\d+$/.test(rank)) {
      const n = size !== undefined && /^\d+$/.test(size) ? Number(size) : Number(rank) + 1;
      return { rank: Number(rank), size: Math.max(n, Number(rank) + 1) };
    }
  }
  return null;
}

/** Display controllers (PCI class 0x03xxxx) under `root` (default sysfs), sorted by address. */
export function listPciGpus(root = "/sys/bus/pci/devices"): PciGpu[] {
  const out: PciGpu[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return out;
  }
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p).trim().toLowerCase();
    } catch {
      return "";
    }
  };
  for (const e of entries) {
    if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(e.name)) continue;
    if (!read(`${root}/${e.name}/class`).startsWith("0x03")) continue;
    out.push({
      address: e.name.toLowerCase(),
      vendor: read(`${root}/${e.name}/vendor`).replace(/^0x/, ""),
      device: read(`${root}/${e.name}/device`).replace(/^0x/, ""),
    });
  }
  return out.sort((a, b) => a.address.localeCompare(b.address));
}

/** The device-select layer's tag for a PCI address: `0000:18:00.0` → `pci-0000_18_00_0`. */
export function driPrimeTag(address: string): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address);
  if (!m) throw new RangeError(`not a PCI address (domain:bus:slot.function): "${address}"`);
  return `pci-${m[1]}_${m[2]}_${m[3]}_${m[4]}`.toLowerCase();
}

/**
 * The GPU of local rank `localRank` of `localSize` among `gpus` (round-robin: rank l takes GPU l mod n), and
 * the variables that make WebGPU pick it. Variables the user already set for a selection are respected:
 * nothing is added over them.
 */
export function planRankDevice(
  localRank: number,
  localSize: number,
  gpus: PciGpu[],
  env: Record<string, string | undefined> = {},
): RankDevice {
  const userSet = ["DRI_PRIME", "MESA_VK_DEVICE_SELECT", "VK_LOADER_DEVICE_SELECT"].filter((k) => env[k]);
  if (userSet.length) {
    return {
      how: "none",
      gpu: null,
      env: {},
      shared: false,
      note: `GPU selection left to ${userSet.map((k) => `${k}=${env[k]}`).join(" ")}`,
    };
  }
  if (gpus.length <= 1) {
    return {
      how: gpus.length ? "container" : "none",
      gpu: gpus[0] ?? null,
      env: {},
      shared: localSize > 1,
      note: gpus.length
        ? `one GPU visible (${gpus[0].address})${localSize > 1 ? `, shared by ${localSize} local ranks` : ""}`
        : `no PCI display device found${localSize > 1 ? `; ${localSize} local ranks share the default adapter` : ""}`,
    };
  }
  const gpu = gpus[localRank % gpus.length];
  return {
    how: "pci",
    gpu,
    env: { DRI_PRIME: driPrimeTag(gpu.address), MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1" },
    shared: localSize > gpus.length,
    note:
      `local rank ${localRank} of ${localSize} → GPU ${localRank % gpus.length} of ${gpus.length} (${gpu.address}, ` +
      `${gpu.vendor}:${gpu.device})${
        localSize > gpus.length ? `: ${localSize} ranks for ${gpus.length} GPUs, shared` : ""
      }`,
  };
}
