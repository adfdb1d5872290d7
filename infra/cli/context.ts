import type { Readable, Writable } from "node:stream";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * What a command may touch, passed in so tests run commands in-process with
 * captured output and a frozen clock. Only egw.ts binds it to the real process.
 */
export interface CliContext {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable;
  stdin: Readable;
  cwd: string;
  now: () => Date;
  env: Readonly<Record<string, string | undefined>>;
}

/** Exit codes shared by every subcommand. */
export const EXIT = { ok: 0, rejected: 1, usage: 2 } as const;

/** A usage or I/O problem: printed without a stack, exit code 2. */
export class UsageError extends EgwError<"ERR_USAGE"> {
  override readonly name = "UsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_USAGE", message, "fix-input", options);
  }
}

export function print(stream: Writable, text: string): void {
  stream.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Strict flag parsing; unknown flags and bad values are usage errors. */
type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

export function parseFlags<const O extends FlagSpec>(
  args: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
