/**
 * Shared pieces of the command line: usage errors (the library throws them; here they mean exit code 2) and option
 * parsing through
 * `node:util`'s `parseArgs` (the design card's `@std/cli` lives on JSR, which cannot be reached here).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { closest } from "../util/text.ts";
import { UsageError } from "../util/errors.ts";

export { UsageError };

/** Exit codes of every command. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Parses `argv` strictly; unknown options become a {@link UsageError} that names them and the nearest known one. */
export function parseOptions<T extends NonNullable<ParseArgsConfig["options"]>>(
  argv: string[],
  options: T,
  help: string,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    const message = (e as Error).message.replace(/^TypeError( \[\w+\])?: /, "");
    const unknown = /^Unknown option '(--?[\w-]+)'/.exec(message)?.[1];
    const near = unknown ? closest(unknown, Object.keys(options).map((o) => `--${o}`), 2) : undefined;
    throw new UsageError(near ? `unknown option ${unknown}; did you mean ${near}?` : message, near ? undefined : help);
  }
}

/** What a command returns: its exit code. */
export type Command = (argv: string[]) => Promise<number>;
