/**
 * Launching a test program under MPI: the MPICH launcher is `$PLRC_MPIRUN`, else `mpiexec.mpich`, else
 * `mpirun`; Open MPI's `mpirun.openmpi` where installed. Without a launcher the MPI tests are ignored, and
 * {@link WHY} says why in their names.
 */

function exists(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/** The full path of `name` on `$PATH` (or `name` itself when it is a path that exists), else null. */
export function onPath(name: string): string | null {
  if (name.includes("/")) return exists(name) ? name : null;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

/** MPICH's launcher, or null. */
export const MPICH_RUN: string | null = Deno.env.get("PLRC_MPIRUN") || onPath("mpiexec.mpich") || onPath("mpirun");
/** Open MPI's launcher, or null. */
export const OMPI_RUN: string | null = onPath("mpirun.openmpi");
/** No MPICH launcher: the MPI tests are ignored. */
export const NO_LAUNCHER: boolean = MPICH_RUN === null;
/** Appended to the name of a test that is ignored, so that the report says why. */
export const WHY: string = NO_LAUNCHER ? " [ignored: no mpirun on PATH; apt-get install mpich libmpich-dev]" : "";

/** What a launch printed and how it ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link mpirun}. */
export interface MpirunOptions {
  /** The launcher is Open MPI's. */
  ompi?: boolean;
  /** Ranks (default 2). */
  ranks?: number;
  /** Seconds before the whole launch is killed (default 300). */
  timeoutS?: number;
  /** Extra environment. */
  env?: Record<string, string>;
}

/** Runs `deno run -A PROGRAM ARGS…` as `ranks` ranks under `launcher`. */
export async function mpirun(launcher: string, program: string[], o: MpirunOptions = {}): Promise<Run> {
  const env: Record<string, string> = { NO_COLOR: "1", ...o.env };
  const pre = o.ompi ? ["--oversubscribe"] : [];
  // Open MPI refuses root unless told; CI containers run as root
  if (o.ompi) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" });
  const cmd = new Deno.Command("timeout", {
    args: [
      String(o.timeoutS ?? 300),
      launcher,
      ...pre,
      "-n",
      String(o.ranks ?? 2),
      Deno.execPath(),
      "run",
      "-A",
      ...program,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
