import { EgwError } from "../../attestation/egw-error.js";

/**
 * Failures of the host's half of boot provisioning. A failed status from
 * the enclave is not one of these: it is a valid answer, returned to the
 * caller with the enclave's own code. These say that no answer came.
 */
export type ProvisionSendErrorCode =
  | "ERR_PROVISION_DEADLINE" // no enclave accepted the connection before the deadline
  | "ERR_PROVISION_TIMEOUT" // connected and sent, but no whole status before the deadline
  | "ERR_PROVISION_CLOSED" // the enclave closed (or the socket failed) before a whole status
  | "ERR_PROVISION_MALFORMED" // the status is not one frame of the documented JSON
  | "ERR_PROVISION_TOO_LARGE" // the bundle to send, or the status received, is over its cap
  | "ERR_PROVISION_ABORTED" // stopped by the caller (SIGTERM while provisioning)
  | "ERR_PROVISION_CREDENTIALS" // the AWS SDK's default chain gave no credentials
  | "ERR_PROVISION_INPUT"; // a file to send cannot be used (e.g. no region in the sealed-secrets file)

export class ProvisionSendError extends EgwError<ProvisionSendErrorCode> {
  override readonly name = "ProvisionSendError";

  constructor(code: ProvisionSendErrorCode, message: string, options?: { cause?: unknown }) {
    // No answer in time, or a hang-up, may pass on a new attempt; the rest will not.
    const action = code === "ERR_PROVISION_DEADLINE" || code === "ERR_PROVISION_TIMEOUT" || code === "ERR_PROVISION_CLOSED" ? "retry" : code === "ERR_PROVISION_ABORTED" ? "stop" : code === "ERR_PROVISION_MALFORMED" ? "reject" : "fix-input";
    super(code, message, action, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

export function isProvisionSendError(err: unknown): err is ProvisionSendError {
  return err instanceof ProvisionSendError;
}
