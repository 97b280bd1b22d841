/** Per-rank GPU selection: local rank from each launcher, GPUs from a sysfs tree, the variables set per rank. */
import assert from "node:assert/strict";
import { driPrimeTag, listPciGpus, localRankFromEnv, planRankDevice } from "../../src/dist/device_select.ts";
import { sharedDeviceRefusal } from "../../src/cli/pretrain.ts";
import { otherRankLog } from "../../src/train/trainer.ts";

Deno.test("device_select: local rank from Hydra, Open MPI and Slurm variables", () => {
  assert.deepEqual(localRankFromEnv({ MPI_LOCALRANKID: "1", MPI_LOCALNRANKS: "4" }), { rank: 1, size: 4 });
  assert.deepEqual(localRankFromEnv({ OMPI_COMM_WORLD_LOCAL_RANK: "3", OMPI_COMM_WORLD_LOCAL_SIZE: "8" }), {
    rank: 3,
    size: 8,
  });
  assert.deepEqual(localRankFromEnv({ SLURM_LOCALID: "2" }), { rank: 2, size: 3 });
  assert.equal(localRankFromEnv({}), null);
});

Deno.test("device_select: GPUs from a sysfs tree, and each local rank's variables", () => {
  const root = Deno.makeTempDirSync();
  try {
    const dev = (addr: string, cls: string, vendor: string, device: string) => {
      Deno.mkdirSync(`${root}/${addr}`);
      Deno.writeTextFileSync(`${root}/${addr}/class`, `${cls}\n`);
      Deno.writeTextFileSync(`${root}/${addr}/vendor`, `${vendor}\n`);
      Deno.writeTextFileSync(`${root}/${addr}/device`, `${device}\n`);
    };
    dev("0000:2a:00.0", "0x030200", "0x10de", "0x2335");
    dev("0000:18:00.0", "0x030200", "0x10de", "0x2335");
    dev("0000:00:03.0", "0x020000", "0x1af4", "0x1041"); // a network card
    const gpus = listPciGpus(root);
    assert.deepEqual(gpus.map((g) => g.address), ["0000:18:00.0", "0000:2a:00.0"]);
    assert.equal(gpus[0].vendor, "10de");
    const r1 = planRankDevice(1, 2, gpus);
    assert.equal(r1.how, "pci");
    assert.deepEqual(r1.env, { DRI_PRIME: "pci-0000_2a_00_0", MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: "1" });
    assert.equal(r1.shared, false);
    assert.equal(planRankDevice(0, 2, gpus).env.DRI_PRIME, "pci-0000_18_00_0");
    // more ranks than GPUs: wraps and says so
    const r2 = planRankDevice(2, 3, gpus);
    assert.equal(r2.gpu?.address, "0000:18:00.0");
    assert.equal(r2.shared, true);
    // a user's own selection is left alone
    assert.deepEqual(planRankDevice(1, 2, gpus, { MESA_VK_DEVICE_SELECT: "10de:2335" }).env, {});
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
  // one GPU (a container's share) or none: nothing to set; several ranks on it are reported as shared
  assert.equal(planRankDevice(0, 1, [{ address: "0000:01:00.0", vendor: "10de", device: "2335" }]).how, "container");
  assert.equal(planRankDevice(1, 2, []).shared, true);
  assert.equal(listPciGpus("/nonexistent").length, 0);
  assert.equal(driPrimeTag("0000:C1:00.0"), "pci-0000_c1_00_0");
  assert.throws(() => driPrimeTag("01:00.0"), RangeError);
});

Deno.test("device_select: two local ranks on one GPU are refused unless allowed; CPU adapters are shared", () => {
  const one = [{ address: "0000:18:00.0", vendor: "10de", device: "2335" }];
  const two = [...one, { address: "0000:19:00.0", vendor: "10de", device: "2335" }];
  const shared = planRankDevice(1, 2, one), own = planRankDevice(1, 2, two), alone = planRankDevice(0, 1, one);
  assert.equal(shared.shared, true);
  assert.match(sharedDeviceRefusal(shared, "gpu", false)!, /shared by 2 local ranks.*distributed\.shareDevice=true/);
  assert.equal(sharedDeviceRefusal(shared, "gpu", true), null);
  assert.equal(sharedDeviceRefusal(shared, "cpu", false), null);
  assert.equal(sharedDeviceRefusal(own, "gpu", false), null);
  assert.equal(sharedDeviceRefusal(alone, "gpu", false), null);
  // three ranks on two GPUs: one of them shares
  assert.match(sharedDeviceRefusal(planRankDevice(2, 3, two), "gpu", false)!, /3 ranks for 2 GPUs, shared/);
});

Deno.test("the log of a rank other than 0 keeps only errors, marked with the rank", () => {
  const seen: unknown[] = [], err = console.error;
  console.error = (...a: unknown[]) => void seen.push(a.join(" "));
  try {
    const log = otherRankLog(3);
    log("step 1/8 loss 6.3");
    log("warning: the bottleneck is aligned");
    log("error: a loss became NaN");
  } finally {
    console.error = err;
  }
  assert.deepEqual(seen, ["rank 3: error: a loss became NaN"]);
});
