import { encodeFrame } from "./frame.js";
import { ProvisionError } from "./provision-errors.js";
import { MAX_CIPHERTEXT_BYTES, MAX_IDENTITY_ATTESTATION_BYTES, MAX_SEALED_IDENTITY_BYTES } from "./sealed-file.js";

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
 * Clients learn the same hashes from the attestation document. The enclave
 * encodes it (encodeStatus) and the host decodes it (decodeStatus) as input
 * from a peer: bounded, exact fields, typed. The host cannot check that an
 * identity blob holds what the summary says (it cannot open it): replicas
 * booted from it attest the real TLS SPKI and receipt keys, and that is
 * what clients check.
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
  let message = String((err as { message?: unknown }).message ?? "")
    .replace(/[\u0000-\u001f\u007f]/g, " ")
    .slice(0, MAX_STATUS_MESSAGE);
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
      return {
        status: "ready",
        configSha256: status.configSha256,
        policySha256: status.policySha256,
        tlsSpkiSha256: status.tlsSpkiSha256,
        ...(status.port !== undefined && { port: status.port }),
        ...(status.vsock !== undefined && { vsock: status.vsock }),
      };
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

// ─── decode (the host) ───────────────────────────────────────────────────────

export const MAX_STATUS_BYTES = 64 * 1024;
/** The same bounds as the sealed-secrets file's identity field (sealed-file.ts). */
const IDENTITY_BYTES = {
  dataKey: [1, MAX_CIPHERTEXT_BYTES],
  iv: [12, 12],
  sealed: [17, MAX_SEALED_IDENTITY_BYTES + 16],
  attestation: [1, MAX_IDENTITY_ATTESTATION_BYTES],
} as const;
const MAX_RECEIPT_KEYS = 4;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX32 = /^[0-9a-f]{64}$/;
const CODE = /^ERR_[A-Z0-9_]{1,64}$/;
const VSOCK = /^vsock:\/\/\d{1,10}:\d{1,10}$/;

const malformed = (message: string) => new ProvisionError("ERR_PROVISION_MALFORMED", `enclave status: ${message}`);

export function decodeStatus(body: Uint8Array): BootStatus {
  if (body.length > MAX_STATUS_BYTES) throw new ProvisionError("ERR_PROVISION_TOO_LARGE", `enclave status: ${body.length} bytes, at most ${MAX_STATUS_BYTES} allowed`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw malformed("not UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed("not an object");
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v);
  if (v.status === "ready") {
    const allowed = ["status", "configSha256", "policySha256", "tlsSpkiSha256", "port", "vsock"];
    if (keys.some((k) => !allowed.includes(k))) throw malformed("unknown field in a ready status");
    if (typeof v.configSha256 !== "string" || !HEX32.test(v.configSha256)) throw malformed(`"configSha256" expected 64 lower-case hex digits`);
    if (typeof v.policySha256 !== "string" || !HEX32.test(v.policySha256)) throw malformed(`"policySha256" expected 64 lower-case hex digits`);
    if (typeof v.tlsSpkiSha256 !== "string" || !HEX32.test(v.tlsSpkiSha256)) throw malformed(`"tlsSpkiSha256" expected 64 lower-case hex digits`);
    if (v.port !== undefined && (typeof v.port !== "number" || !Number.isInteger(v.port) || v.port < 1 || v.port > 65535)) throw malformed(`"port" expected 1..65535`);
    if (v.vsock !== undefined && (typeof v.vsock !== "string" || !VSOCK.test(v.vsock))) throw malformed(`"vsock" expected vsock://cid:port`);
    return {
      status: "ready",
      configSha256: v.configSha256,
      policySha256: v.policySha256,
      tlsSpkiSha256: v.tlsSpkiSha256,
      ...(typeof v.port === "number" && { port: v.port }),
      ...(typeof v.vsock === "string" && { vsock: v.vsock }),
    };
  }
  if (v.status === "failed") {
    if (keys.length !== 3 || typeof v.code !== "string" || typeof v.message !== "string") throw malformed(`a failed status has exactly "status", "code" and "message"`);
    if (!CODE.test(v.code)) throw malformed(`"code" expected ERR_ and upper-case letters, digits or _`);
    if (v.message.length > 1024) throw malformed(`"message" is longer than 1024 characters`);
    return { status: "failed", code: v.code, message: v.message };
  }
  if (v.status === "identity") return identityStatus(v);
  throw malformed(`"status" expected "ready", "identity" or "failed"`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function exactKeys(obj: Record<string, unknown>, keys: readonly string[], where: string): void {
  const got = Object.keys(obj);
  if (got.length !== keys.length || keys.some((k) => !Object.hasOwn(obj, k))) throw malformed(`${where} must have exactly ${keys.map((k) => `"${k}"`).join(", ")}`);
}

/** An ISO 8601 UTC time as Date#toISOString writes it, and only that (one time, one spelling). */
function isoTime(value: unknown, where: string): number {
  const ms = typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== value) throw malformed(`${where} expected an ISO 8601 UTC time`);
  return ms;
}

function identityStatus(v: Record<string, unknown>): IdentityStatus {
  exactKeys(v, ["status", "identity", "tlsSpkiSha256", "receiptKeys"], "an identity status");
  const blob = v.identity;
  if (!isObject(blob)) throw malformed(`"identity" must be an object`);
  exactKeys(blob, ["dataKey", "iv", "sealed", "attestation"], `"identity"`);
  const identity = { dataKey: "", iv: "", sealed: "", attestation: "" };
  for (const name of ["dataKey", "iv", "sealed", "attestation"] as const) {
    const text = blob[name];
    const [min, max] = IDENTITY_BYTES[name];
    if (typeof text !== "string" || text.length === 0 || text.length > 4 * Math.ceil(max / 3) || !BASE64.test(text)) throw malformed(`"identity.${name}" expected base64`);
    // Canonical only, as the sealed-secrets file requires: the host writes this text into it.
    const bytes = Buffer.from(text, "base64");
    if (bytes.toString("base64") !== text) throw malformed(`"identity.${name}" is not canonical base64`);
    if (bytes.length < min || bytes.length > max) throw malformed(`"identity.${name}" is ${bytes.length} bytes, expected ${min}..${max}`);
    identity[name] = text;
  }
  if (typeof v.tlsSpkiSha256 !== "string" || !HEX32.test(v.tlsSpkiSha256)) throw malformed(`"tlsSpkiSha256" expected 64 lower-case hex digits`);
  const keys = v.receiptKeys;
  if (!Array.isArray(keys) || keys.length < 1 || keys.length > MAX_RECEIPT_KEYS) throw malformed(`"receiptKeys" expected 1..${MAX_RECEIPT_KEYS} entries`);
  const receiptKeys = keys.map((k: unknown, i) => {
    if (!isObject(k)) throw malformed(`"receiptKeys[${i}]" must be an object`);
    exactKeys(k, ["spkiSha256", "notBefore", "notAfter"], `"receiptKeys[${i}]"`);
    if (typeof k.spkiSha256 !== "string" || !HEX32.test(k.spkiSha256)) throw malformed(`"receiptKeys[${i}].spkiSha256" expected 64 lower-case hex digits`);
    if (isoTime(k.notBefore, `"receiptKeys[${i}].notBefore"`) >= isoTime(k.notAfter, `"receiptKeys[${i}].notAfter"`))
      throw malformed(`"receiptKeys[${i}]" has notBefore >= notAfter`);
    return { spkiSha256: k.spkiSha256, notBefore: k.notBefore as string, notAfter: k.notAfter as string };
  });
  return { status: "identity", identity, tlsSpkiSha256: v.tlsSpkiSha256, receiptKeys };
}
