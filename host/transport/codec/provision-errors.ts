import { EgwError } from "../../../attestation/egw-error.js";

/**
 * Every failure of the boot provisioning channel, on either side of it, is
 * a ProvisionError with a stable `code`: the frame, bundle and status
 * codecs (this folder) are shared, so one class names their failures for
 * the host and the enclave alike. Messages name the field and sizes that
 * failed, never a value: the bundle carries AWS credentials, and the
 * enclave's console must stay content-free.
 *
 * A failed status from the enclave is not one of these on the host: it is
 * a valid answer, returned with the enclave's own code. These say that no
 * (usable) answer came, or that an input could not be sent.
 */
export type ProvisionErrorCode =
  | "ERR_PROVISION_TOO_LARGE" // a frame's declared length, a file to send, or a bundle or status over its cap
  | "ERR_PROVISION_MALFORMED" // not one frame of UTF-8 JSON of the documented shape; unknown, duplicate or mistyped field
  | "ERR_PROVISION_TIMEOUT" // no host connected in time, or a frame did not arrive whole in time
  | "ERR_PROVISION_CLOSED" // the peer hung up (or the socket failed) before a whole frame arrived
  | "ERR_PROVISION_BUSY" // enclave: sent to a second connection while the first is being served; never thrown
  | "ERR_PROVISION_IDENTITY" // enclave: an identity request that does not fit the sealed file (overlapDays missing for a rotation, or overlapDays/rotateTls for a first identity)
  | "ERR_PROVISION_DEADLINE" // host: no enclave accepted the connection before the deadline
  | "ERR_PROVISION_ABORTED" // host: stopped by the caller (SIGTERM while provisioning)
  | "ERR_PROVISION_CREDENTIALS" // host: the AWS SDK's default chain gave no credentials
  | "ERR_PROVISION_INPUT"; // host: a file to send cannot be used (e.g. no region in the sealed-secrets file)

export class ProvisionError extends EgwError<ProvisionErrorCode> {
  override readonly name = "ProvisionError";

  constructor(code: ProvisionErrorCode, message: string, options?: { cause?: unknown }) {
    // No answer in time, a hang-up or a busy channel may pass on a new attempt; the rest will not.
    const retry = code === "ERR_PROVISION_DEADLINE" || code === "ERR_PROVISION_TIMEOUT" || code === "ERR_PROVISION_CLOSED" || code === "ERR_PROVISION_BUSY";
    const action = retry ? "retry" : code === "ERR_PROVISION_ABORTED" ? "stop" : code === "ERR_PROVISION_MALFORMED" ? "reject" : "fix-input";
    super(code, message, action, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

export function isProvisionError(err: unknown): err is ProvisionError {
  return err instanceof ProvisionError;
}
