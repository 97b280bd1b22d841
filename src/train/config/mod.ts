/**
 * The pre-training configuration: its schema and presets (`schema.ts`), resolution in layers — schema
 * defaults ← preset ← config file ← `--set` (`resolve.ts`), the values derived from it (`derive.ts`: steps per
 * epoch, schedules, step sizes) and `docs/config.md` (`doc.ts`).
 *
 * @module
 */
export * from "./schema.ts";
export * from "./resolve.ts";
export * from "./derive.ts";
export { generateConfigDoc } from "./doc.ts";
