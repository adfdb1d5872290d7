import { EgwError, type EgwErrorAction } from "./egw-error.js";

/**
 * Every failure of the attestation module is an AttestationError with a stable
 * `code`. Callers switch on `code`, never on the message. Messages name the
 * check that failed and the sizes involved, never the bytes of a nonce, key or
 * user_data (they may be secrets or attacker-chosen text).
 *
 * `action` groups codes by what the caller should do (after tinfoil-js):
 *  - "fix-input":  the bytes are not a well-formed Nitro document
 *  - "fix-policy": the caller's policy options are unusable
 *  - "reject":     a well-formed document failed a security check; do not use it
 *  - "retry":      a transient problem (device busy, rate limit)
 */
export type AttestationErrorCode =
  // Shape and encoding (RFC 8949 / RFC 9052 / AWS NSM API)
  | "ERR_INPUT_TOO_LARGE"
  | "ERR_CBOR_MALFORMED"
  | "ERR_CBOR_TRAILING_BYTES"
  | "ERR_CBOR_DUPLICATE_KEY"
  | "ERR_COSE_STRUCTURE"
  | "ERR_COSE_ALG"
  | "ERR_DOC_FIELD"
  | "ERR_DOC_UNKNOWN_FIELD"
  | "ERR_PCR_INVALID"
  // Signature and chain
  | "ERR_SIGNATURE_INVALID"
  | "ERR_CERT_MALFORMED"
  | "ERR_CERT_ALGORITHM"
  | "ERR_CERT_NOT_YET_VALID"
  | "ERR_CERT_EXPIRED"
  | "ERR_CERT_CONSTRAINTS"
  | "ERR_CHAIN_BROKEN"
  | "ERR_ROOT_UNTRUSTED"
  // Policy
  | "ERR_POLICY_INVALID"
  | "ERR_PCR_MISMATCH"
  | "ERR_NONCE_MISMATCH"
  | "ERR_PUBLIC_KEY_MISMATCH"
  | "ERR_USER_DATA_MISMATCH"
  | "ERR_DOC_STALE"
  | "ERR_DOC_FROM_FUTURE"
  | "ERR_DEBUG_MODE"
  // Receipts
  | "ERR_RECEIPT_REQUEST_MISMATCH"
  | "ERR_RECEIPT_RESPONSE_MISMATCH"
  | "ERR_RECEIPT_KEY_WINDOW"
  // Issuing
  | "ERR_NSM_UNAVAILABLE"
  | "ERR_NSM_REQUEST"
  | "ERR_NSM_RESPONSE"
  | "ERR_DEV_CA";

/** The attestation module uses four of the base's actions (attestation/egw-error.ts). */
export type ErrorAction = Extract<EgwErrorAction, "fix-input" | "fix-policy" | "reject" | "retry">;

const ACTION: Record<AttestationErrorCode, ErrorAction> = {
  ERR_INPUT_TOO_LARGE: "fix-input",
  ERR_CBOR_MALFORMED: "fix-input",
  ERR_CBOR_TRAILING_BYTES: "fix-input",
  ERR_CBOR_DUPLICATE_KEY: "fix-input",
  ERR_COSE_STRUCTURE: "fix-input",
  ERR_COSE_ALG: "reject",
  ERR_DOC_FIELD: "fix-input",
  ERR_DOC_UNKNOWN_FIELD: "fix-input",
  ERR_PCR_INVALID: "fix-input",
  ERR_SIGNATURE_INVALID: "reject",
  ERR_CERT_MALFORMED: "reject",
  ERR_CERT_ALGORITHM: "reject",
  ERR_CERT_NOT_YET_VALID: "reject",
  ERR_CERT_EXPIRED: "reject",
  ERR_CERT_CONSTRAINTS: "reject",
  ERR_CHAIN_BROKEN: "reject",
  ERR_ROOT_UNTRUSTED: "reject",
  ERR_POLICY_INVALID: "fix-policy",
  ERR_PCR_MISMATCH: "reject",
  ERR_NONCE_MISMATCH: "reject",
  ERR_PUBLIC_KEY_MISMATCH: "reject",
  ERR_USER_DATA_MISMATCH: "reject",
  ERR_DOC_STALE: "reject",
  ERR_DOC_FROM_FUTURE: "reject",
  ERR_DEBUG_MODE: "reject",
  ERR_RECEIPT_REQUEST_MISMATCH: "reject",
  ERR_RECEIPT_RESPONSE_MISMATCH: "reject",
  ERR_RECEIPT_KEY_WINDOW: "reject",
  ERR_NSM_UNAVAILABLE: "retry",
  ERR_NSM_REQUEST: "fix-input",
  ERR_NSM_RESPONSE: "retry",
  ERR_DEV_CA: "fix-input",
};

export class AttestationError extends EgwError<AttestationErrorCode, ErrorAction> {
  override readonly name = "AttestationError";

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, ACTION[code], options);
  }
}

/** Signature failures always carry this one message, so the error is no oracle. */
export const SIGNATURE_MESSAGE = "signature verification failed";

export function isAttestationError(err: unknown): err is AttestationError {
  return err instanceof AttestationError;
}
