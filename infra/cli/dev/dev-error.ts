import { EgwError } from "../../../attestation/egw-error.js";

/**
 * What `egw dev` refuses before or while it boots the stack:
 *  - ERR_DEV_CONFIG: the `--config` file (or a document it names) is unusable;
 *    the message names the file and the JSON pointer of the field at fault;
 *  - ERR_DEV_SECRET_MISSING: the trust policy names a provider secret the
 *    environment does not hold (the provider and the variable are named);
 *  - ERR_DEV_BOOT: a child process (local model, host, enclave) failed to
 *    start; the message carries the child's own error line (code and text).
 * Never a key, a token or a prompt: only names, paths and the children's
 * content-free error lines.
 */
export type DevErrorCode = "ERR_DEV_CONFIG" | "ERR_DEV_SECRET_MISSING" | "ERR_DEV_BOOT";

export class DevError extends EgwError<DevErrorCode> {
  override readonly name = "DevError";
  constructor(code: DevErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, code === "ERR_DEV_BOOT" ? "stop" : "fix-config", options);
  }
}
