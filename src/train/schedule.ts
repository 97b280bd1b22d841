/**
 * Schedules: cosine learning rate with optional linear warm-up, optional cosine EMA momentum (BYOL style:
 * from m up to 1), and the DINO teacher-temperature warm-up.
 *
 * @module
 */

/** Learning rate at `step` of `total`: linear warm-up over `warmup` steps, then cosine decay to 0. */
export function cosineLr(base: number, step: number, total: number, warmup = 0): number {
  if (warmup > 0 && step < warmup) return base * (step + 1) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return base * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** EMA momentum: constant, or cosine from `base` to 1 over training. */
export function emaMomentum(base: number, step: number, total: number, cosine: boolean): number {
  if (!cosine) return base;
  const t = Math.min(1, step / Math.max(1, total));
  return 1 - (1 - base) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** Teacher temperature: linear from `start` to `end` over the first `warmupFraction` of training. */
export function teacherTemperature(
  start: number,
  end: number,
  step: number,
  total: number,
  warmupFraction: number,
): number {
  const w = Math.max(1, Math.round(total * warmupFraction));
  return step >= w ? end : start + (end - start) * step / w;
}
