/**
 * `deno task compile`: builds the single `plrc` binary with `deno compile`. Deno's compiler needs its
 * runtime (`denort`), which it downloads from the internet unless `DENORT_BIN` points at one; where
 * neither is possible this says so plainly and exits with code 3 (CI reports that as a skip).
 */
const out = Deno.args[0] ?? "dist/plrc";
const cmd = new Deno.Command(Deno.execPath(), {
  // worker modules are started by URL, not imported, so they must be included explicitly
  args: [
    "compile",
    "-A",
    ...["decode_worker.ts", "sample_worker.ts"].flatMap((w) => [
      "--include",
      new URL(`../src/data/${w}`, import.meta.url).pathname,
    ]),
    "--output",
    out,
    new URL("../cli.ts", import.meta.url).pathname,
  ],
  stdout: "inherit",
  stderr: "piped",
});
const r = await cmd.output();
const err = new TextDecoder().decode(r.stderr);
if (r.code === 0) {
  await Deno.stderr.write(r.stderr);
  console.log(`built ${out}`);
  Deno.exit(0);
}
if (/denort|dl\.deno\.land|error sending request|dns error/i.test(err)) {
  console.error(
    "deno compile could not get its runtime (denort): it downloads it from the internet, which this machine\n" +
      "cannot reach. Set DENORT_BIN to a denort binary of the same Deno version (2.9.6) and run again, or use\n" +
      "`deno task bundle` (a single JavaScript file run with `deno run -A dist/plrc.js`).",
  );
  Deno.exit(3);
}
console.error(err);
Deno.exit(r.code || 1);
