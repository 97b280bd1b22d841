/**
 * Edit distance and "did you mean" for names typed by users (commands, options, configuration keys).
 *
 * @module
 */

/** Levenshtein distance: insertions, deletions and substitutions of one character. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The candidate nearest to `word`, if within `maxDistance` edits (default: 1, or a fifth of its length). */
export function closest(
  word: string,
  candidates: Iterable<string>,
  maxDistance = Math.max(1, Math.floor(word.length / 5)),
): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word, c);
    if (d < bestD) best = c, bestD = d;
  }
  return bestD <= maxDistance ? best : undefined;
}
