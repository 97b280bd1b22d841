/**
 * autoBackend: with DENO_WEBGPU_BACKEND unset, plrc asks for Vulkan alone where a Vulkan driver is installed,
 * so that GL (libEGL, whose exit handler raced a thread's exit into a glibc abort) is never loaded; anywhere
 * else it leaves wgpu's default. And in this process: the adapter came up without loading libEGL whenever it
 * was chosen that way.
 */
import assert from "node:assert/strict";
import { autoBackend, getGpu } from "../../src/gpu/device.ts";
import { GPU_TEST } from "../util.ts";

/** A fake filesystem: files with contents ("" for libraries). */
function fakeFs(files: Record<string, string>) {
  return {
    readDir(dir: string) {
      const names = Object.keys(files).filter((p) => p.startsWith(`${dir}/`)).map((p) => p.slice(dir.length + 1));
      if (!names.length) throw new Deno.errors.NotFound(dir);
      return names.filter((n) => !n.includes("/"));
    },
    readText(path: string) {
      if (!(path in files)) throw new Deno.errors.NotFound(path);
      return files[path];
    },
    exists: (path: string) => path in files,
  };
}

const icd = (lib: string) => JSON.stringify({ file_format_version: "1.0.0", ICD: { library_path: lib } });
const LOADER = "/usr/lib/x86_64-linux-gnu/libvulkan.so.1";
const noEnv = () => undefined;

Deno.test("autoBackend: vulkan where a driver manifest's library and the loader exist, else null", () => {
  // lavapipe as Debian installs it
  const lvp = {
    [LOADER]: "",
    "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json": icd("/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"),
    "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so": "",
  };
  assert.equal(autoBackend(noEnv, fakeFs(lvp), "linux"), "vulkan");
  // not on other systems (wgpu picks Metal / DX12 there, with no EGL)
  assert.equal(autoBackend(noEnv, fakeFs(lvp), "darwin"), null);
  // a manifest whose library is missing (a container without the NVIDIA driver mounted)
  const dangling = { [LOADER]: "", "/etc/vulkan/icd.d/nvidia_icd.json": icd("libGLX_nvidia.so.0") };
  assert.equal(autoBackend(noEnv, fakeFs(dangling), "linux"), null);
  // the same with the driver's library found on LD_LIBRARY_PATH
  const mounted = { ...dangling, "/opt/nv/lib/libGLX_nvidia.so.0": "" };
  const ld = (n: string) => n === "LD_LIBRARY_PATH" ? "/opt/nv/lib" : undefined;
  assert.equal(autoBackend(ld, fakeFs(mounted), "linux"), "vulkan");
  assert.equal(autoBackend(noEnv, fakeFs(mounted), "linux"), null);
  // no loader: no Vulkan, whatever the manifests say
  const { [LOADER]: _, ...noLoader } = lvp;
  assert.equal(autoBackend(noEnv, fakeFs(noLoader), "linux"), null);
  // VK_DRIVER_FILES names the manifests to use instead of the standard folders
  const listed = { [LOADER]: "", "/x/my.json": icd("/x/libmine.so"), "/x/libmine.so": "" };
  const vdf = (n: string) => n === "VK_DRIVER_FILES" ? "/x/my.json" : undefined;
  assert.equal(autoBackend(vdf, fakeFs(listed), "linux"), "vulkan");
  assert.equal(autoBackend(noEnv, fakeFs(listed), "linux"), null);
  // a library path relative to its manifest, and a manifest that is not JSON
  const rel = {
    [LOADER]: "",
    "/usr/share/vulkan/icd.d/a.json": "{",
    "/usr/share/vulkan/icd.d/b.json": icd("lib/v.so"),
  };
  assert.equal(autoBackend(noEnv, fakeFs(rel), "linux"), null);
  assert.equal(
    autoBackend(noEnv, fakeFs({ ...rel, "/usr/share/vulkan/icd.d/lib/v.so": "" }), "linux"),
    "vulkan",
  );
});

Deno.test({
  name: "the shared device: chosen automatically, GL was not loaded; chosen by the user, the summary says so",
  ...GPU_TEST,
  async fn() {
    const g = await getGpu();
    const s = g.summary;
    assert.ok(["env", "auto", "default"].includes(s.backendSelection));
    if (s.backendSelection === "auto") {
      assert.equal(s.requestedBackend, "vulkan");
      assert.equal(s.backend, "vulkan");
      if (Deno.build.os === "linux") {
        assert.doesNotMatch(Deno.readTextFileSync("/proc/self/maps"), /libEGL/, "libEGL is loaded");
      }
    }
    if (s.backendSelection === "env") assert.equal(s.requestedBackend, Deno.env.get("DENO_WEBGPU_BACKEND"));
  },
});
