/**
 * `egw enclave`: the enclave program (enclave/main.ts), which the image
 * runs on its own (enclave/bin.ts), run from the CLI for `egw dev` and the
 * tests. Flags and behaviour live there; this only maps its usage error to
 * the CLI's, so `egw enclave` prints and exits like every other command.
 */
import { main, type EnclaveCommandDeps } from "../../enclave/main.js";
import { EnclaveUsageError } from "../../enclave/main-context.js";
import { UsageError, type CliContext } from "./context.js";
export { ENCLAVE_USAGE } from "./usage.js";
export type { EnclaveCommandDeps } from "../../enclave/main.js";

export async function enclaveCommand(args: string[], ctx: CliContext, deps: EnclaveCommandDeps = {}): Promise<number> {
  try {
    return await main(args, ctx, deps);
  } catch (err) {
    if (err instanceof EnclaveUsageError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}
