/**
 * Resolution of a configuration in layers: schema defaults ← preset ← config file ← `--set` (← command-line
 * overrides such as `--data`), with validation against the schema and messages that name the key, the value
 * and where it came from; also the YAML form of a resolved configuration and the keys two of them differ in.
 *
 * @module
 */
import { Document, parse as parseYaml, visit } from "npm:yaml@^2.8.1";
import { levenshtein } from "../../util/text.ts";
import { VERSION } from "../../version.ts";
import {
  CONFIG_PATHS,
  ConfigError,
  type ConfigPath,
  type KeyRule,
  type KeySpec,
  type PlrcConfig,
  PRESET_NAMES,
  type PresetName,
  PRESETS,
  SCHEMA,
} from "./schema.ts";

// ---------------------------------------------------------------- helpers

/** A configuration file as parsed, before validation: nested sections of keys and values. */
export type ConfigTree = Record<string, unknown>;
const isObj = (v: unknown): v is ConfigTree => typeof v === "object" && v !== null && !Array.isArray(v);
const SECTIONS = new Set(
  CONFIG_PATHS.flatMap((p) => p.split(".").slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join("."))),
);
const isLeaf = (p: string): p is ConfigPath => Object.hasOwn(SCHEMA, p);
const specOf = (p: ConfigPath): KeySpec<unknown> => SCHEMA[p] as KeySpec<unknown>;

/** Reads a value by path ("a.b.c"). */
function getPath(o: unknown, path: string): unknown {
  for (const k of path.split(".")) o = isObj(o) ? o[k] : undefined;
  return o;
}

/** Writes a value by path, creating sections. */
function setPath(o: ConfigTree, path: string, v: unknown): void {
  const ks = path.split(".");
  for (const k of ks.slice(0, -1)) {
    if (!isObj(o[k])) o[k] = {};
    o = o[k] as ConfigTree;
  }
  o[ks[ks.length - 1]] = Array.isArray(v) ? [...v] : v;
}

/** A value as written in messages. */
function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** The allowed values of a key, in words. */
export function describeRule(rule: KeyRule): string {
  const bound = (r: { min?: number; max?: number; minExclusive?: true; maxExclusive?: true }) => {
    const lo = r.min === undefined ? "" : `${r.minExclusive ? ">" : "≥"} ${r.min}`;
    const hi = r.max === undefined ? "" : `${r.maxExclusive ? "<" : "≤"} ${r.max}`;
    return [lo, hi].filter(Boolean).join(" and ");
  };
  switch (rule.type) {
    case "int": {
      let s = `an integer${rule.min !== undefined || rule.max !== undefined ? " " + bound(rule) : ""}`;
      if (rule.multipleOf) s += `, a multiple of ${rule.multipleOf}`;
      if (rule.auto) s += `, or auto`;
      if (rule.nullable) s += `, or null`;
      return s;
    }
    case "number":
      return `a number${rule.min !== undefined || rule.max !== undefined ? " " + bound(rule) : ""}`;
    case "bool":
      return "true or false";
    case "string":
      return rule.nullable ? "a string, or null" : "a string";
    case "enum":
      return rule.values.join(", ");
    case "range":
      return `[low, high] with ${rule.min} ${rule.minExclusive ? "<" : "≤"} low ≤ high ≤ ${rule.max}`;
  }
}

/** Whether `v` satisfies `rule`. */
function fits(rule: KeyRule, v: unknown): boolean {
  const inBounds = (x: number, r: { min?: number; max?: number; minExclusive?: true; maxExclusive?: true }) =>
    Number.isFinite(x) &&
    (r.min === undefined || (r.minExclusive ? x > r.min : x >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? x < r.max : x <= r.max));
  switch (rule.type) {
    case "int":
      if (v === "auto" && rule.auto) return true;
      if (v === null && rule.nullable) return true;
      return typeof v === "number" && Number.isInteger(v) && inBounds(v, rule) &&
        (!rule.multipleOf || v % rule.multipleOf === 0);
    case "number":
      return typeof v === "number" && inBounds(v, rule);
    case "bool":
      return typeof v === "boolean";
    case "string":
      return (typeof v === "string" && v.length > 0) || (v === null && !!rule.nullable);
    case "enum":
      return rule.values.includes(v as string | number);
    case "range":
      return Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number") &&
        inBounds(v[0], { min: rule.min, minExclusive: rule.minExclusive }) && v[0] <= v[1] && v[1] <= rule.max;
  }
}

/** The key most likely meant by an unknown `path`, if one is close enough. */
export function suggestKey(path: string): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, "");
  const candidates = [...CONFIG_PATHS, ...SECTIONS];
  const n = norm(path);
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(n, norm(c));
    if (d < bestD) best = c, bestD = d;
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(n.length / 5))) return best;
  // an abbreviation or an extension of a key ("optimizer" → "optim")
  const parent = (s: string) => s.split(".").slice(0, -1).join(".");
  const tail = (s: string) => norm(s.split(".").pop()!);
  const t = tail(path);
  const prefixed = candidates.find((c) => {
    const m = tail(c);
    return parent(c) === parent(path) && Math.min(m.length, t.length) >= 3 && (m.startsWith(t) || t.startsWith(m));
  });
  if (prefixed) return prefixed;
  // the same key name in another section ("train.lr" → "optim.lr")
  const same = candidates.filter((c) => {
    const l = tail(c);
    return l === t || (t.length > 4 && levenshtein(l, t) <= 1);
  });
  return same[0];
}

function keysOf(section: string): string[] {
  const pre = section ? section + "." : "";
  const names = new Set<string>();
  for (const p of [...CONFIG_PATHS, ...SECTIONS]) {
    if (p.startsWith(pre) && p.length > pre.length) names.add(p.slice(pre.length).split(".")[0]);
  }
  return [...names];
}

function unknownKey(path: string, origin?: string): string {
  const parent = path.split(".").slice(0, -1).join(".");
  const s = suggestKey(path);
  const where = origin ? ` (from ${origin})` : "";
  if (s) return `${path}: unknown key${where}; did you mean ${s}?`;
  const section = SECTIONS.has(parent) ? parent : "";
  return `${path}: unknown key${where}; keys ${section ? `of ${section}` : "at the top level"}: ${
    keysOf(section).join(", ")
  }`;
}

function badValue(path: string, v: unknown, allowed: string, origin?: string): string {
  return `${path}: got ${show(v)}${origin ? ` (from ${origin})` : ""}; allowed: ${allowed}`;
}

// ---------------------------------------------------------------- defaults, validation

/** The schema's defaults as a configuration (a fresh copy each call). */
export function schemaDefaults(): PlrcConfig {
  const o: ConfigTree = {};
  for (const p of CONFIG_PATHS) setPath(o, p, SCHEMA[p].default);
  return o as unknown as PlrcConfig;
}

/** Defaults of every key (the paper's setting, with preset cpu-tiny named as the one to apply). */
export const DEFAULTS: Readonly<PlrcConfig> = schemaDefaults();

/** Problems of a complete configuration object: structure, each value, and rules across keys. */
function problemsOf(cfg: unknown, origins: Map<string, string> = new Map()): string[] {
  const problems: string[] = [];
  if (!isObj(cfg)) return [`the configuration must be a mapping of keys to values, got ${show(cfg)}`];
  const walk = (o: ConfigTree, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = pre + k;
      if (isLeaf(p)) continue;
      if (SECTIONS.has(p)) {
        if (isObj(v)) walk(v, p + ".");
        else problems.push(badValue(p, v, `a mapping with keys ${keysOf(p).join(", ")}`, origins.get(p)));
      } else problems.push(unknownKey(p, origins.get(p)));
    }
  };
  walk(cfg, "");
  const bad = new Set<string>();
  for (const p of CONFIG_PATHS) {
    const v = getPath(cfg, p);
    if (v === undefined) {
      problems.push(`${p}: missing; allowed: ${describeRule(specOf(p))}`);
      bad.add(p);
    } else if (!fits(specOf(p), v)) {
      problems.push(badValue(p, v, describeRule(specOf(p)), origins.get(p)));
      bad.add(p);
    }
  }
  const c = cfg as unknown as PlrcConfig;
  const ok = (...ps: ConfigPath[]) => ps.every((p) => !bad.has(p) && getPath(cfg, p) !== undefined);
  const rule = (p: ConfigPath, allowed: string) => problems.push(badValue(p, getPath(cfg, p), allowed, origins.get(p)));
  if (ok("eval.knnEvery", "eval.knnAnn", "data.source")) {
    if (c.eval.knnEvery > 0 && c.eval.knnAnn === null && c.data.source !== "scenes") {
      rule("eval.knnAnn", "a COCO instances file when eval.knnEvery > 0 with a folder data.source");
    }
  }
  if (ok("device.f16Storage") && c.device.f16Storage) {
    rule("device.f16Storage", "false (f16 activation storage is not built yet; every buffer is f32)");
  }
  if (ok("data.regions.source", "data.regions.labelmaps")) {
    if (c.data.regions.source === "labelmaps" && c.data.regions.labelmaps === null) {
      rule("data.regions.labelmaps", "a folder of label-map PNGs (required when data.regions.source is labelmaps)");
    }
  }
  if (ok("data.regions.source", "data.source")) {
    if (c.data.regions.source === "labelmaps" && c.data.source === "scenes") {
      rule("data.regions.source", "grid, fh or gt with the built-in scenes (label maps need a folder data.source)");
    }
    if (c.data.regions.source === "gt" && c.data.source !== "scenes") {
      rule(
        "data.regions.source",
        "grid, fh or labelmaps with a folder source (gt masks exist for the built-in scenes only)",
      );
    }
  }
  if (ok("data.regions.source", "data.regions.grid", "data.regions.count")) {
    const g = c.data.regions.grid;
    if (c.data.regions.source === "grid" && c.data.regions.count > g * g) {
      rule("data.regions.count", `at most data.regions.grid² = ${g * g} with grid regions`);
    }
  }
  if (ok("train.accumulate", "train.batchSize") && c.train.batchSize % c.train.accumulate !== 0) {
    rule("train.accumulate", `a divisor of train.batchSize (${c.train.batchSize})`);
  }
  if (ok("model.bnGroup", "train.batchSize", "train.accumulate") && c.train.batchSize % c.train.accumulate === 0) {
    const { bnGroup } = c.model, b = c.train.batchSize / c.train.accumulate;
    const what = c.train.accumulate > 1
      ? `the micro-batch train.batchSize / train.accumulate (${b})`
      : `train.batchSize (${b})`;
    if (bnGroup < b && b % bnGroup !== 0) {
      rule("model.bnGroup", `a divisor of ${what}, or at least ${b} (one group)`);
    }
  }
  if (ok("method", "loss.image.queue", "train.batchSize")) {
    if (c.method !== "detcon" && c.loss.image.queue < c.train.batchSize) {
      rule("loss.image.queue", `at least train.batchSize (${c.train.batchSize})`);
    }
  }
  if (ok("method", "loss.image.weight", "loss.point.weight", "loss.distill.weight")) {
    const l = c.loss;
    if (c.method === "plrc" && l.image.weight + l.point.weight + l.distill.weight === 0) {
      rule("loss.image.weight", "loss weights that are not all 0 (method plrc)");
    }
  }
  if (ok("data.source", "data.scenes.count", "train.batchSize", "train.stepsPerEpoch")) {
    if (c.data.source === "scenes" && c.train.stepsPerEpoch === "auto" && c.data.scenes.count < c.train.batchSize) {
      rule("data.scenes.count", `at least train.batchSize (${c.train.batchSize}) for at least one step per epoch`);
    }
  }
  return problems;
}

/** Checks a complete configuration; throws a {@link ConfigError} listing every problem. */
export function validateConfig(cfg: unknown): PlrcConfig {
  const problems = problemsOf(cfg);
  if (problems.length) throw new ConfigError(problems);
  return cfg as PlrcConfig;
}

// ---------------------------------------------------------------- --set, resolution

/** One `--set` assignment. */
export interface Assignment {
  /** The key. */
  path: ConfigPath;
  /** The value, already checked against the key's rule. */
  value: unknown;
}

const KEY_RE = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;

/**
 * Parses `key.path=value`: the value is read as a YAML scalar (or a flow sequence such as `[0.2, 1]`)
 * and checked against the key's rule; a string key takes the text as is unless it is quoted. Throws a
 * {@link ConfigError} naming the key on bad syntax, an unknown key or a bad value.
 */
export function parseSet(s: string): Assignment {
  const eq = s.indexOf("=");
  const key = eq < 0 ? "" : s.slice(0, eq).trim();
  if (eq < 0 || !KEY_RE.test(key)) {
    throw new ConfigError([`--set expects key.path=value (e.g. optim.lr=0.1), got ${show(s)}`]);
  }
  if (!isLeaf(key)) {
    if (SECTIONS.has(key)) {
      throw new ConfigError([`${key}: is a section (from --set); set one of its keys: ${keysOf(key).join(", ")}`]);
    }
    throw new ConfigError([unknownKey(key, "--set")]);
  }
  const raw = s.slice(eq + 1).trim();
  const rule = specOf(key);
  let value: unknown;
  if (rule.type === "string" && !/^(["']).*\1$/.test(raw) && !(rule.nullable && /^(|~|null|Null|NULL)$/.test(raw))) {
    value = raw;
  } else {
    try {
      value = parseYaml(raw);
    } catch (e) {
      throw new ConfigError([
        `${key}: cannot read ${show(raw)} as a YAML value (from --set): ${(e as Error).message.split("\n")[0]}`,
      ]);
    }
    if (isObj(value)) throw new ConfigError([badValue(key, raw, describeRule(rule), "--set")]);
  }
  if (!fits(rule, value)) throw new ConfigError([badValue(key, value, describeRule(rule), "--set")]);
  return { path: key, value };
}

/** What {@link resolveConfig} layers. */
export interface ResolveOptions {
  /** Preset when neither the file nor `--set` names one (default: the schema's, cpu-tiny). */
  preset?: string;
  /** Parsed YAML of a configuration file (null or undefined: none). */
  file?: unknown;
  /** The file's name, for messages. */
  fileName?: string;
  /** `--set key=value` strings, applied in order after the file. */
  sets?: readonly string[];
  /** Last layer: command-line options that stand for keys, e.g. `{ path: "data.source", value, origin: "--data" }`. */
  overrides?: readonly { path: string; value: unknown; origin: string }[];
}

/**
 * Resolves a configuration: schema defaults ← preset ← file ← `--set` ← overrides. The preset is the
 * last one named (option, then file, then `--set`) and is always applied first. Every problem in every
 * layer is collected and thrown together as one {@link ConfigError}.
 */
export function resolveConfig(opts: ResolveOptions = {}): PlrcConfig {
  const problems: string[] = [];
  const origins = new Map<string, string>();
  const fileName = opts.fileName ?? "the config file";
  const assignments: Assignment[] = [];
  for (const s of opts.sets ?? []) {
    try {
      assignments.push(parseSet(s));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  }
  let file: ConfigTree = {};
  if (opts.file !== undefined && opts.file !== null) {
    if (isObj(opts.file)) file = opts.file;
    else problems.push(`${fileName}: the configuration must be a mapping of keys to values, got ${show(opts.file)}`);
  }

  // the preset: the last one named
  let preset: { name: unknown; origin: string } = { name: SCHEMA.preset.default, origin: "" };
  if (opts.preset !== undefined) preset = { name: opts.preset, origin: "the preset option" };
  if (file.preset !== undefined) preset = { name: file.preset, origin: fileName };
  for (const a of assignments) if (a.path === "preset") preset = { name: a.value, origin: "--set" };
  for (const o of opts.overrides ?? []) if (o.path === "preset") preset = { name: o.value, origin: o.origin };
  let presetName: PresetName = SCHEMA.preset.default;
  if ((PRESET_NAMES as readonly unknown[]).includes(preset.name)) presetName = preset.name as PresetName;
  else if (preset.origin !== "--set") {
    problems.push(badValue("preset", preset.name, describeRule(SCHEMA.preset), preset.origin || undefined));
  }

  const cfg = schemaDefaults() as unknown as ConfigTree;
  setPath(cfg, "preset", presetName);
  if (preset.origin) origins.set("preset", preset.origin);
  for (const [p, v] of Object.entries(PRESETS[presetName].values)) {
    setPath(cfg, p, v), origins.set(p, `preset ${presetName}`);
  }

  const walk = (o: ConfigTree, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = pre + k;
      if (p === "preset") continue;
      if (isLeaf(p)) setPath(cfg, p, v), origins.set(p, fileName);
      else if (SECTIONS.has(p)) {
        if (isObj(v)) walk(v, p + ".");
        else if (v !== null) {
          problems.push(badValue(p, v, `a mapping with keys ${keysOf(p).join(", ")}`, fileName));
        }
      } else problems.push(unknownKey(p, fileName));
    }
  };
  walk(file, "");
  for (const a of assignments) if (a.path !== "preset") setPath(cfg, a.path, a.value), origins.set(a.path, "--set");
  for (const o of opts.overrides ?? []) {
    if (o.path === "preset") continue;
    if (isLeaf(o.path)) setPath(cfg, o.path, o.value), origins.set(o.path, o.origin);
    else problems.push(unknownKey(o.path, o.origin));
  }
  problems.push(...problemsOf(cfg, origins));
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  return cfg as unknown as PlrcConfig;
}

/** Reads and parses a YAML configuration file; unreadable or malformed files are a {@link ConfigError}. */
export async function readConfigFile(path: string): Promise<ConfigTree | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError([`cannot read ${path}: ${(e as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** Parses configuration YAML (a file's, or the one a checkpoint holds); `name` says where it came from. */
export function parseConfigText(text: string, name: string): ConfigTree | null {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError([`${name} is not valid YAML: ${(e as Error).message}`]);
  }
  if (doc !== null && !isObj(doc)) {
    throw new ConfigError([`${name}: the configuration must be a mapping of keys to values, got ${show(doc)}`]);
  }
  return doc;
}

/** The keys whose values differ between two resolved configurations, in schema order. */
export function configChanges(from: PlrcConfig, to: PlrcConfig): { path: ConfigPath; from: unknown; to: unknown }[] {
  return CONFIG_PATHS.map((path) => ({ path, from: getPath(from, path), to: getPath(to, path) }))
    .filter((c) => JSON.stringify(c.from) !== JSON.stringify(c.to));
}

/** The resolved configuration as YAML, every key in schema order, with a header comment. */
export function configToYaml(cfg: PlrcConfig): string {
  const o: ConfigTree = {};
  for (const p of CONFIG_PATHS) setPath(o, p, getPath(cfg, p));
  const doc = new Document(o);
  visit(doc, { Seq: (_, node) => void (node.flow = true) });
  doc.commentBefore = [
    ` plrc ${VERSION}: resolved pre-training configuration (every key; see docs/config.md).`,
    ` Reuse it with: plrc pretrain --config <this file>. Its preset is applied first, then these values.`,
  ].join("\n");
  return doc.toString({ lineWidth: 0 });
}
