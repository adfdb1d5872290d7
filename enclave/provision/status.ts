import { encodeFrame } from "./frame.js";

/**
 * The enclave's one reply on the provisioning connection, framed like the
 * bundle (frame.ts), body UTF-8 JSON:
 *
 *   { "status": "ready", "configSha256": "<hex>", "policySha256": "<hex>", "tlsSpkiSha256": "<hex>", "port": 8443 (optional), "vsock": "vsock://…" (optional) }
 *   { "status": "identity", "identity": { "dataKey": "<b64>", "iv": "<b64>", "sealed": "<b64>", "attestation": "<b64>" },
 *     "tlsSpkiSha256": "<hex>", "receiptKeys": [ { "spkiSha256": "<hex>", "notBefore": "<ISO>", "notAfter": "<ISO>" } ] }
 *   { "status": "failed", "code": "ERR_…", "message": "…" }
 *
 * The reply travels over the untrusted host and is not signed: it is an
 * operator's signal ("the enclave is up" / "why it stopped"), not evidence.
 * Clients learn the same hashes from the attestation document.
 */
export interface ReadyStatus {
  status: "ready";
  /** Hex of the attested config hash (user_data config_sha256). */
  configSha256: string;
  /** Hex of the attested trust policy hash (user_data policy_sha256). */
  policySha256: string;
  /** Hex of SHA-256 of the TLS certificate's SubjectPublicKeyInfo. */
  tlsSpkiSha256: string;
  /** The gateway's TCP port (loopback inside the enclave when it listens on vsock); absent on a Unix socket. */
  port?: number;
  /** The vsock endpoint the gateway is bridged to, on Nitro. */
  vsock?: string;
}

/**
 * The answer to an identity request (bundle `identity.generate`): the new
 * sealed identity, which is ciphertext only (the keys inside open only
 * under a data key KMS releases to a measured enclave), and public hashes
 * for the operator to publish. Never key material.
 */
export interface IdentityStatus {
  status: "identity";
  /** The sealed-secrets file's `identity` field, base64 as in that file. */
  identity: { dataKey: string; iv: string; sealed: string; attestation: string };
  /** Hex of SHA-256 of the TLS key's SubjectPublicKeyInfo: what clients pin. */
  tlsSpkiSha256: string;
  /** The signing receipt key first, then the retired ones, newest first, as attested in binding v2. */
  receiptKeys: { spkiSha256: string; notBefore: string; notAfter: string }[];
}

export interface FailedStatus {
  status: "failed";
  /** A stable code: ERR_PROVISION_*, ERR_CONFIG, ERR_KMS_*, ERR_SEALED_FILE_*, … or ERR_BOOT_FAILED. */
  code: string;
  message: string;
}

export type BootStatus = ReadyStatus | IdentityStatus | FailedStatus;

export const MAX_STATUS_MESSAGE = 512;
const STABLE_CODE = /^ERR_[A-Z0-9_]{1,64}$/;
const GENERIC_MESSAGE = "the enclave failed to boot";

/**
 * The failed reply for an error. Only this project's typed errors (a stable
 * ERR_ code) pass their message on, since those messages are written to
 * name fields and sizes, never values; anything else becomes
 * ERR_BOOT_FAILED with a fixed message. `never` lists strings that must not
 * leave the enclave whatever a message says (the bundle's credentials): a
 * message that contains one is replaced, not edited.
 */
export function failedStatus(err: unknown, never: readonly string[] = []): FailedStatus {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !STABLE_CODE.test(code)) return { status: "failed", code: "ERR_BOOT_FAILED", message: GENERIC_MESSAGE };
  let message = String((err as { message?: unknown }).message ?? "").replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, MAX_STATUS_MESSAGE);
  if (never.some((s) => s.length > 0 && message.includes(s))) message = GENERIC_MESSAGE;
  return { status: "failed", code, message };
}

export function encodeStatus(status: BootStatus): Uint8Array {
  // Fields in a fixed order, so a reply is byte-for-byte predictable in tests and captures.
  return encodeFrame(new TextEncoder().encode(JSON.stringify(orderedBody(status))));
}

function orderedBody(status: BootStatus): object {
  switch (status.status) {
    case "ready":
      return { status: "ready", configSha256: status.configSha256, policySha256: status.policySha256, tlsSpkiSha256: status.tlsSpkiSha256, ...(status.port !== undefined && { port: status.port }), ...(status.vsock !== undefined && { vsock: status.vsock }) };
    case "identity":
      return {
        status: "identity",
        identity: { dataKey: status.identity.dataKey, iv: status.identity.iv, sealed: status.identity.sealed, attestation: status.identity.attestation },
        tlsSpkiSha256: status.tlsSpkiSha256,
        receiptKeys: status.receiptKeys.map((k) => ({ spkiSha256: k.spkiSha256, notBefore: k.notBefore, notAfter: k.notAfter })),
      };
    case "failed":
      return { status: "failed", code: status.code, message: status.message };
  }
}
