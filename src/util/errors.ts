/**
 * Error types the library throws for problems the caller can fix. The library only throws; the command line
 * (`cli.ts`) turns a {@link UsageError} into usage help and exit code 2.
 *
 * @module
 */

/** A problem with the command line, the configuration or an input path: the caller's to fix (CLI exit code 2). */
export class UsageError extends Error {
  /** `help` is the usage text to print with the message. */
  constructor(message: string, readonly help?: string) {
    super(message);
    this.name = "UsageError";
  }
}
