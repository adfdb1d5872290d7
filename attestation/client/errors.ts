import { AttestationError, type AttestationErrorCode, type ErrorAction } from "../errors.js";
import { EgwError } from "../egw-error.js";

/**
 * Every failure of the verifying client is a ClientError with a stable
 * `code`: either one of the client's own codes below, or the
 * AttestationErrorCode of the document or receipt check that failed (the
 * original AttestationError is the `cause`). Callers switch on `code`.
 *
 * `action` groups codes by what the caller should do, as in ../errors.ts:
 *  - "reject":     the gateway, or something pretending to be it, failed a
 *                  security check; nothing was sent, or the answer was not used
 *  - "retry":      transient (network, rate limit); a new connection may pass
 *  - "fix-input":  the caller asked for something the client refuses to do
 *  - "fix-policy": the policy or manifest is unusable
 */
export type ClientOwnErrorCode =
  /** TCP or TLS to the gateway failed or timed out. */
  | "ERR_CONNECT"
  /** The attestation endpoint answered with a non-200 status (429 rate limit, 5xx…). */
  | "ERR_ATTESTATION_UNAVAILABLE"
  /** The attestation exchange was not well-formed HTTP/1.1 or not a bounded CBOR document. */
  | "ERR_ATTESTATION_PROTOCOL"
  /** The SPKI of the TLS certificate on the connection is not the attested one. */
  | "ERR_TLS_BINDING"
  /** The document's PCRs match no entry of the measurement policy. */
  | "ERR_MEASUREMENTS_NOT_ALLOWED"
  /** The attested runtime-config hash is not among the allowed ones. */
  | "ERR_CONFIG_NOT_ALLOWED"
  /** A response carries no receipt (header, or final SSE comment block). */
  | "ERR_RECEIPT_MISSING"
  /** The receipt header or block is not base64url of a bounded COSE_Sign1. */
  | "ERR_RECEIPT_MALFORMED"
  /** A verified receipt describes another response (status or stream flag). */
  | "ERR_RECEIPT_CLAIMS_MISMATCH"
  /** The request body is over the client's limit. */
  | "ERR_REQUEST_TOO_LARGE"
  /** The response body is over the client's limit. */
  | "ERR_RESPONSE_TOO_LARGE"
  /** The URL is not on the attested gateway's origin. */
  | "ERR_ORIGIN"
  /** The verified fetch was closed. */
  | "ERR_CLOSED"
  /** A measurements manifest is not valid (path and reason in the message). */
  | "ERR_MANIFEST_INVALID"
  /**
   * A signing key was pinned and the manifest's detached signature is
   * missing, malformed, by another key, or does not verify over its bytes.
   */
  | "ERR_MANIFEST_SIGNATURE"
  /**
   * The manifest's `expires` time has come (the client clock is at or past
   * it): the manifest is not used, neither when loaded nor to attest a
   * connection, and the verified fetch sends nothing more under it.
   */
  | "ERR_MANIFEST_EXPIRED"
  /**
   * A minimum sequence was pinned and the manifest carries none, or a lower
   * one: it is older than a manifest the relying party already trusted.
   */
  | "ERR_MANIFEST_ROLLBACK"
  /**
   * The trust policy served over the attested connection is not the one the
   * document attests (its SHA-256 differs from policy_sha256), or trust is
   * constrained and the document attests no trust policy at all (channel
   * binding v1/v2, an older enclave).
   */
  | "ERR_TRUST_POLICY_MISMATCH"
  /** The attested trust policy's bytes are not a valid trust policy (field and reason in the message). */
  | "ERR_TRUST_POLICY_INVALID"
  /** The attested trust policy breaks a constraint of the manifest's trust section (which one, and the value, in the message). */
  | "ERR_TRUST_NOT_ALLOWED"
  /**
   * A receipt says the answer came from an upstream origin that the attested
   * trust policy names for no provider, or that the trust section does not allow.
   */
  | "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED";

export type ClientErrorCode = ClientOwnErrorCode | AttestationErrorCode;

const ACTION: Record<ClientOwnErrorCode, ErrorAction> = {
  ERR_CONNECT: "retry",
  ERR_ATTESTATION_UNAVAILABLE: "retry",
  ERR_ATTESTATION_PROTOCOL: "reject",
  ERR_TLS_BINDING: "reject",
  ERR_MEASUREMENTS_NOT_ALLOWED: "reject",
  ERR_CONFIG_NOT_ALLOWED: "reject",
  ERR_RECEIPT_MISSING: "reject",
  ERR_RECEIPT_MALFORMED: "reject",
  ERR_RECEIPT_CLAIMS_MISMATCH: "reject",
  ERR_REQUEST_TOO_LARGE: "fix-input",
  ERR_RESPONSE_TOO_LARGE: "reject",
  ERR_ORIGIN: "fix-input",
  ERR_CLOSED: "fix-input",
  ERR_MANIFEST_INVALID: "fix-policy",
  // Someone may have altered the published manifest: stop, do not fall back to it unsigned.
  ERR_MANIFEST_SIGNATURE: "reject",
  // Fetch the current manifest; nothing about the gateway was judged.
  ERR_MANIFEST_EXPIRED: "fix-policy",
  // Someone may be replaying a withdrawn manifest: stop, do not lower the pin to get past it.
  ERR_MANIFEST_ROLLBACK: "reject",
  // The host may be serving another policy than the enclave runs: nothing was sent.
  ERR_TRUST_POLICY_MISMATCH: "reject",
  ERR_TRUST_POLICY_INVALID: "reject",
  // The enclave may send prompts or keys where the relying party did not agree to: nothing was sent.
  ERR_TRUST_NOT_ALLOWED: "reject",
  ERR_RECEIPT_UPSTREAM_NOT_ALLOWED: "reject",
};

function actionOf(code: ClientErrorCode): ErrorAction {
  if (Object.hasOwn(ACTION, code)) return ACTION[code as ClientOwnErrorCode];
  // An attestation code keeps the action the attestation module gives it.
  return new AttestationError(code as AttestationErrorCode, "").action;
}

/** One line of an attestation report (see AttestedPeer.steps). */
export interface ClientStep {
  step: string;
  status: "passed" | "not-requested" | "failed";
  detail: string;
}

export class ClientError extends EgwError<ClientErrorCode, ErrorAction> {
  override readonly name = "ClientError";
  /**
   * For attestation failures: the steps that passed before this one, then
   * the failed step, so a report can show how far verification got.
   */
  readonly steps: readonly ClientStep[];

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown; action?: ErrorAction; steps?: readonly ClientStep[] }) {
    super(code, message, options?.action ?? actionOf(code), options?.cause === undefined ? undefined : { cause: options.cause });
    this.steps = options?.steps ?? [];
  }
}

export function isClientError(err: unknown): err is ClientError {
  return err instanceof ClientError;
}

/** Wraps an AttestationError under its own code and action; other values pass through untouched. */
export function asClientError(err: unknown): unknown {
  if (err instanceof AttestationError) return new ClientError(err.code, err.message, { cause: err, action: err.action });
  return err;
}

/** The same error, with a report: the steps that passed, then `step` as the failed one. Keeps a report it already has. */
export function withSteps(err: ClientError, passed: readonly ClientStep[], step: string): ClientError {
  if (err.steps.length > 0) return err;
  return new ClientError(err.code, err.message, {
    cause: err.cause ?? err,
    action: err.action,
    steps: [...passed, { step, status: "failed", detail: `${err.code}: ${err.message}` }],
  });
}
