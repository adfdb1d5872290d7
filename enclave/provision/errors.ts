import { EgwError } from "../../attestation/egw-error.js";

/**
 * Every failure of the boot provisioning channel on the enclave side is a
 * ProvisionError with a stable `code`. Messages name the field and sizes that
 * failed, never a value: the bundle carries AWS credentials, and the enclave's
 * console must stay content-free.
 */
export type ProvisionErrorCode =
  | "ERR_PROVISION_TOO_LARGE" // the frame's declared length is over the cap
  | "ERR_PROVISION_MALFORMED" // not one frame of UTF-8 JSON of the documented shape; unknown, duplicate or mistyped field
  | "ERR_PROVISION_TIMEOUT" // no host connected in time, or the bundle did not arrive whole in time
  | "ERR_PROVISION_CLOSED" // the host hung up (or the socket failed) before a whole bundle arrived
  | "ERR_PROVISION_BUSY" // sent to a second connection while the first is being served; never thrown
  | "ERR_PROVISION_IDENTITY"; // an identity request that does not fit the sealed file (overlapDays missing for a rotation, or overlapDays/rotateTls for a first identity)

export class ProvisionError extends EgwError<ProvisionErrorCode> {
  override readonly name = "ProvisionError";

  constructor(code: ProvisionErrorCode, message: string) {
    // The host may try again on a timeout or a closed or busy channel; the rest is the bundle's fault.
    super(code, message, code === "ERR_PROVISION_TIMEOUT" || code === "ERR_PROVISION_CLOSED" || code === "ERR_PROVISION_BUSY" ? "retry" : "fix-input");
  }
}

export function isProvisionError(err: unknown): err is ProvisionError {
  return err instanceof ProvisionError;
}
