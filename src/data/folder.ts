/**
 * Image folders: a recursive, deterministic scan for JPEG and PNG files, and the skip report that every
 * data command prints (what was skipped and why; a bad file is never a crash).
 *
 * Rules: files are matched by extension (`.jpg .jpeg .jpe .png`, any case) and later checked by content;
 * other files are listed as skipped; entries whose name starts with "." (e.g. the `.plrc` cache folder)
 * are not entered; symbolic links to files are followed, to folders are not (no cycles). Paths are
 * sorted by code point, so the index of an image does not depend on the file system's order.
 *
 * @module
 */
import { join, relative, resolve, sep } from "node:path";

/** File extensions scanned as images. */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".jpe", ".png"];

/** One file that was not used, and why. */
export interface Skipped {
  /** Path relative to the data folder ("/"-separated). */
  path: string;
  /** Why the file was not used. */
  reason: string;
}

/** The result of a scan: image candidates and the other files found. */
export interface FolderScan {
  /** The scanned folder. */
  root: string;
  /** Relative "/"-separated paths of image candidates, sorted. */
  images: string[];
  /** Files with other extensions (listed in the skip report). */
  skipped: Skipped[];
}

/** True when `name` has an image extension. */
export function hasImageExtension(name: string): boolean {
  const dot = name.lastIndexOf(".");
  return dot >= 0 && IMAGE_EXTENSIONS.includes(name.slice(dot).toLowerCase());
}

/**
 * Scans `root` recursively, not entering the folders in `exclude` (e.g. an output folder inside the data).
 * Throws when `root` is not a readable folder (a configuration error).
 */
export async function scanFolder(root: string, exclude: string[] = []): Promise<FolderScan> {
  const st = await Deno.stat(root);
  if (!st.isDirectory) throw new Error(`${root} is not a folder`);
  const images: string[] = [], skipped: Skipped[] = [], skip = new Set(exclude.map((d) => resolve(d)));
  const walk = async (dir: string) => {
    if (skip.has(resolve(dir))) return;
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(dir)) entries.push(e);
    } catch (e) {
      skipped.push({ path: rel(root, dir) + "/", reason: `unreadable folder (${(e as Error).message})` });
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const p = join(dir, e.name);
      let isFile = e.isFile, isDir = e.isDirectory;
      if (e.isSymlink) {
        try {
          const s = await Deno.stat(p);
          isFile = s.isFile, isDir = false;
        } catch {
          skipped.push({ path: rel(root, p), reason: "broken symbolic link" });
          continue;
        }
      }
      if (isDir) await walk(p);
      else if (isFile) {
        if (hasImageExtension(e.name)) images.push(rel(root, p));
        else skipped.push({ path: rel(root, p), reason: "not a .jpg/.jpeg/.png file" });
      }
    }
  };
  await walk(root);
  const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  images.sort(byPath);
  skipped.sort((a, b) => byPath(a.path, b.path));
  return { root, images, skipped };
}

function rel(root: string, p: string): string {
  return relative(root, p).split(sep).join("/");
}

/** Counts for a run summary. */
export interface SkipReport {
  /** Image candidates plus other files seen. */
  seen: number;
  /** Images that were used. */
  used: number;
  /** Files that were not used, and why. */
  skipped: Skipped[];
}

/** A human-readable summary: counts, then up to `maxListed` skipped files with reasons. */
export function formatSkipReport(r: SkipReport, maxListed = 20): string {
  const lines = [`${r.used} images used, ${r.skipped.length} files skipped (${r.seen} seen)`];
  for (const s of r.skipped.slice(0, maxListed)) lines.push(`  skipped ${s.path}: ${s.reason}`);
  if (r.skipped.length > maxListed) lines.push(`  ... and ${r.skipped.length - maxListed} more`);
  return lines.join("\n");
}
