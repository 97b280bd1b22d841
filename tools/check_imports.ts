/**
 * Checks that the source tree's imports only look down the layer table below and that no import circle exists.
 *
 * Every `.ts` file under `src/`, plus `cli.ts` and `mod.ts`, is read for its relative module
 * references: static `import`/`export ... from`, side-effect `import "..."`, dynamic `import("...")` with a literal
 * specifier (type-level `import("...").T` included) and `new URL("...ts", import.meta.url)` (how workers are
 * started). Each file gets the layer of the longest folder prefix in {@link LAYERS}; an import of a file in a
 * higher layer is an error, imports within a layer or downward are fine, and any cycle among the files is an error.
 *
 * Scripts in `bench/` and `tools/` use the library only through its doors (`mod.ts` and `src/<area>/mod.ts`):
 * an import of any other library file from there is reported too.
 *
 * Usage: `deno run -A tools/check_imports.ts [--graph] [ROOT]` (ROOT defaults to the repository). Exits 1 listing
 * each upward edge, one path per cycle and each import past a door; `--graph` also prints the layer table with its file counts.
 *
 * @module
 */

/** One layer: its rank (higher may import lower or equal, never higher) and the path prefixes it owns. */
export interface Layer {
  rank: number;
  name: string;
  prefixes: string[];
}

/** The layers, lowest first. A file belongs to the layer of the longest matching prefix (folders end in "/"). */
export const LAYERS: Layer[] = [
  { rank: 0, name: "util", prefixes: ["src/util/", "src/version.ts"] },
  { rank: 1, name: "gpu/dist", prefixes: ["src/gpu/", "src/dist/"] },
  { rank: 2, name: "kernels", prefixes: ["src/kernels/"] },
  { rank: 3, name: "nn", prefixes: ["src/nn/"] },
  {
    rank: 4,
    name: "models/losses/data/io/export",
    prefixes: ["src/models/", "src/losses/", "src/data/", "src/io/", "src/export/"],
  },
  { rank: 5, name: "train", prefixes: ["src/train/"] },
  { rank: 6, name: "eval/viz/bench", prefixes: ["src/eval/", "src/viz/", "src/bench/"] },
  { rank: 7, name: "cli", prefixes: ["src/cli/"] },
  { rank: 8, name: "entry points", prefixes: ["cli.ts", "mod.ts"] },
];

/** What {@link checkImports} found. */
export interface ImportReport {
  /** Files checked, as paths relative to the root with "/" separators. */
  files: string[];
  /** Every relative import between checked files: [from, to]. */
  edges: [string, string][];
  /** One line per upward edge: `a.ts -> b.ts (layer X imports higher layer Y)`. */
  upward: string[];
  /** One path per cycle found, each starting and ending at the same file. */
  cycles: string[][];
  /** Files outside every layer, and imports of files that do not exist. */
  problems: string[];
  /** File count per layer name, in layer order. */
  counts: Map<string, number>;
  /** Imports from `bench/` and `tools/` that reach past a door: `bench/x.ts -> src/data/batch.ts`. */
  deep: string[];
}

/** The folders whose scripts use the library only through its doors. */
export const DOOR_USERS = ["bench", "tools"];

/** Whether `path` is a door: mod.ts, or a `src/<area>/mod.ts`. */
export function isDoor(path: string): boolean {
  return path === "mod.ts" || /^src\/[^/]+\/mod\.ts$/.test(path);
}

/** Imports of library files other than the doors, from the `.ts` files of {@link DOOR_USERS} under root. */
export async function deepImports(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of DOOR_USERS) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${root}/${dir}`)];
    } catch {
      continue;
    }
    for (
      const e of entries.filter((e) => e.isFile && e.name.endsWith(".ts")).sort((a, b) => a.name < b.name ? -1 : 1)
    ) {
      const file = `${dir}/${e.name}`;
      for (const spec of relativeImports(await Deno.readTextFile(`${root}/${file}`))) {
        const target = resolveRelative(file, spec);
        if (target.startsWith("src/") && !isDoor(target)) {
          out.push(`${file} -> ${target} (use mod.ts or a src/<area>/mod.ts door)`);
        }
      }
    }
  }
  return out;
}

/** The layer of a relative path, or undefined when no prefix matches. */
export function layerOf(path: string, layers: Layer[] = LAYERS): Layer | undefined {
  let best: Layer | undefined;
  let bestLength = -1;
  for (const layer of layers) {
    for (const prefix of layer.prefixes) {
      const match = prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix;
      if (match && prefix.length > bestLength) {
        best = layer;
        bestLength = prefix.length;
      }
    }
  }
  return best;
}

/**
 * The source with comments blanked out and string/template contents kept, so that import-like text inside a
 * comment is not read as an import while specifiers inside strings still are. Template `${...}` parts are
 * scanned as code.
 */
function stripComments(src: string): string {
  const out: string[] = [];
  // Stack of contexts: "code" (with a brace depth for returning from a template substitution) or "template".
  const stack: { kind: "code" | "template"; depth: number }[] = [{ kind: "code", depth: 0 }];
  let i = 0;
  while (i < src.length) {
    const top = stack[stack.length - 1];
    const c = src[i];
    if (top.kind === "template") {
      if (c === "\\") {
        out.push(src.slice(i, i + 2));
        i += 2;
      } else if (c === "`") {
        out.push(c);
        stack.pop();
        i++;
      } else if (c === "$" && src[i + 1] === "{") {
        out.push("${");
        stack.push({ kind: "code", depth: 0 });
        i += 2;
      } else {
        out.push(c);
        i++;
      }
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      const end = src.indexOf("\n", i);
      i = end < 0 ? src.length : end;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out.push(src.slice(i, stop).replace(/[^\n]/g, " "));
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === "`") {
      out.push(c);
      stack.push({ kind: "template", depth: 0 });
      i++;
    } else if (c === "{") {
      top.depth++;
      out.push(c);
      i++;
    } else if (c === "}") {
      if (top.depth === 0 && stack.length > 1) stack.pop();
      else top.depth--;
      out.push(c);
      i++;
    } else {
      out.push(c);
      i++;
    }
  }
  return out.join("");
}

/** The relative module specifiers a source file references (static, dynamic, type-level and worker URLs). */
export function relativeImports(src: string): string[] {
  const code = stripComments(src);
  const found = new Set<string>();
  const patterns = [
    /\b(?:import|export)\s[^"'`;]*?\bfrom\s*(["'])(\.\.?\/[^"'\n]+)\1/g,
    /\bimport\s*(["'])(\.\.?\/[^"'\n]+)\1/g,
    /\bimport\s*\(\s*(["'`])(\.\.?\/[^"'`\n]+)\1\s*[,)]/g,
    /\bnew\s+URL\s*\(\s*(["'`])(\.\.?\/[^"'`\n]+\.[jt]s)\1\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) found.add(m[2]);
  }
  return [...found];
}

/** Resolves a relative specifier against the importing file's relative path ("/" separators). */
function resolveRelative(from: string, spec: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const piece of spec.split("/")) {
    if (piece === "." || piece === "") continue;
    if (piece === "..") parts.pop();
    else parts.push(piece);
  }
  return parts.join("/");
}

/** The `.ts` files the check covers under root: `src/**`, `cli.ts`, `mod.ts`. */
async function listFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${root}/${dir}`)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const entry of entries) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(rel);
      else if (entry.isFile && entry.name.endsWith(".ts")) files.push(rel);
    }
  };
  await walk("src");
  for (const top of ["cli.ts", "mod.ts"]) {
    try {
      if (Deno.statSync(`${root}/${top}`).isFile) files.push(top);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return files.sort();
}

/** One cycle path per strongly connected component with more than one file (or a file importing itself). */
function findCycles(files: string[], edges: [string, string][]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const [a, b] of edges) next.get(a)?.push(b);
  for (const list of next.values()) list.sort();
  // Tarjan's algorithm, iterative so deep chains cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const start of files) {
    if (index.has(start)) continue;
    const work: { node: string; i: number }[] = [{ node: start, i: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const out = next.get(frame.node)!;
      if (frame.i < out.length) {
        const w = out[frame.i++];
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.node);
        const selfLoop = component.length === 1 && next.get(component[0])!.includes(component[0]);
        if (component.length > 1 || selfLoop) components.push(component.sort());
      }
    }
  }
  // Within each component, a shortest path from its first file back to itself (breadth-first).
  return components.map((component) => {
    const inside = new Set(component);
    const first = component[0];
    const prev = new Map<string, string>();
    const queue = [first];
    let closing: string | undefined;
    while (queue.length > 0 && closing === undefined) {
      const node = queue.shift()!;
      for (const w of next.get(node)!) {
        if (!inside.has(w)) continue;
        if (w === first) {
          closing = node;
          break;
        }
        if (!prev.has(w)) {
          prev.set(w, node);
          queue.push(w);
        }
      }
    }
    const path = [first];
    for (let node = closing!; node !== first; node = prev.get(node)!) path.splice(1, 0, node);
    path.push(first);
    return path;
  });
}

/** Reads the tree under root and reports upward imports, cycles and unplaced files. */
export async function checkImports(root: string, layers: Layer[] = LAYERS): Promise<ImportReport> {
  const files = await listFiles(root);
  const known = new Set(files);
  const edges: [string, string][] = [];
  const upward: string[] = [];
  const problems: string[] = [];
  const counts = new Map<string, number>(layers.map((l) => [l.name, 0]));
  for (const file of files) {
    const from = layerOf(file, layers);
    if (!from) problems.push(`${file} is in no layer (add its folder to the layer table)`);
    else counts.set(from.name, counts.get(from.name)! + 1);
    const src = await Deno.readTextFile(`${root}/${file}`);
    for (const spec of relativeImports(src)) {
      const target = resolveRelative(file, spec);
      if (!target.endsWith(".ts")) continue;
      if (!known.has(target)) {
        // Imports of tests, tools or missing files: only the latter is a problem for this check.
        try {
          Deno.statSync(`${root}/${target}`);
        } catch {
          problems.push(`${file} -> ${target} (imported file not found)`);
        }
        continue;
      }
      edges.push([file, target]);
      const to = layerOf(target, layers);
      if (from && to && to.rank > from.rank) {
        upward.push(`${file} -> ${target} (layer ${from.name} imports higher layer ${to.name})`);
      }
    }
  }
  const deep = await deepImports(root);
  return { files, edges, upward, cycles: findCycles(files, edges), problems, counts, deep };
}

/** The layer table as text, one row per layer with its rank, file count and folders. */
export function formatLayers(report: ImportReport, layers: Layer[] = LAYERS): string {
  const rows = [...layers].sort((a, b) => b.rank - a.rank).map((l) =>
    `  ${String(l.rank).padStart(2)}  ${l.name.padEnd(30)} ${
      String(report.counts.get(l.name) ?? 0).padStart(4)
    } files  ${l.prefixes.join(" ")}`
  );
  return ["layers (highest first; a file may import its own layer or lower ones):", ...rows].join("\n");
}

if (import.meta.main) {
  const args = [...Deno.args];
  const graph = args.includes("--graph");
  const root = args.find((a) => !a.startsWith("--")) ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const report = await checkImports(root);
  if (graph) console.log(formatLayers(report));
  for (const line of report.upward) console.error(`upward import: ${line}`);
  for (const cycle of report.cycles) console.error(`import cycle: ${cycle.join(" -> ")}`);
  for (const line of report.problems) console.error(`problem: ${line}`);
  for (const line of report.deep) console.error(`past a door: ${line}`);
  const bad = report.upward.length + report.cycles.length + report.problems.length + report.deep.length;
  console.log(
    `${report.files.length} files, ${report.edges.length} imports: ${report.upward.length} upward, ` +
      `${report.cycles.length} cycles, ${report.problems.length} other problems, ` +
      `${report.deep.length} imports from ${DOOR_USERS.join("/")} past a door`,
  );
  Deno.exit(bad > 0 ? 1 : 0);
}
