import type { Readable, Writable } from "node:stream";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { EgwError } from "../attestation/egw-error.js";

/**
 * What the enclave program (enclave/main.ts) may touch, passed in so tests
 * run it in-process with captured output and a frozen clock; only
 * enclave/bin.ts binds it to the real process. The same shape as the CLI's
 * context (infra/cli/context.ts), so `egw enclave` hands its own over; it is
 * declared here because the measured image holds no infra/ code.
 */
export interface EnclaveContext {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  cwd: string;
  now: () => Date;
  env: Readonly<Record<string, string | undefined>>;
}

/** Exit codes, the same as every egw command's. */
export const EXIT = { ok: 0, rejected: 1, usage: 2 } as const;

/** A bad flag or config input: printed without a stack, exit code 2. */
export class EnclaveUsageError extends EgwError<"ERR_USAGE"> {
  override readonly name = "EnclaveUsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_USAGE", message, "fix-input", options);
  }
}

export function print(stream: Writable, text: string): void {
  stream.write(text.endsWith("\n") ? text : `${text}\n`);
}

type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Strict flag parsing; unknown flags and bad values are usage errors. */
export function parseFlags<const O extends FlagSpec>(
  args: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new EnclaveUsageError((err as Error).message);
  }
}
