/**
 * Kernel families for per-step GPU time breakdowns (`plrc pretrain --profile`, `plrc bench step`).
 *
 * @module
 */

/** Kernel families of the breakdown, by dispatch label. */
export function kernelFamily(label: string): string {
  if (label === "conv_fwd") return "conv forward";
  if (label === "conv_dgrad") return "conv input-grad";
  if (label === "conv_wgrad" || label === "reduce_sum") return "conv weight-grad (+split-K sums)";
  if (label.startsWith("bn_")) return "batch norm";
  if (label === "matmul") return "heads and loss GEMMs";
  if (label === "maxpool") return "max pool";
  if (label === "optimizer" || label === "ema") return "optimizer + EMA";
  if (label.startsWith("distill")) return "distillation";
  return "other losses and elementwise";
}
