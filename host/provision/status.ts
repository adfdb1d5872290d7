import { ProvisionSendError } from "./errors.js";

/**
 * The enclave's reply (docs/PROTOCOL.md, "Boot provisioning"), parsed as
 * input from a peer: bounded, exact fields, typed. It is not signed and
 * proves nothing (the host could forge it to itself); it tells the operator
 * whether the enclave came up and, if not, its stable error code.
 */
export type BootStatus =
  | { status: "ready"; configSha256: string; policySha256: string; tlsSpkiSha256: string; port?: number; vsock?: string }
  | IdentityStatus
  | { status: "failed"; code: string; message: string };

/**
 * The enclave's answer to an identity request: the sealed identity (the
 * sealed-secrets file's `identity` field, ciphertext only) and the public
 * hashes an operator publishes. The host cannot check that the blob holds
 * what the summary says (it cannot open it): replicas booted from it attest
 * the real TLS SPKI and receipt keys, and that is what clients check.
 */
export interface IdentityStatus {
  status: "identity";
  identity: { dataKey: string; iv: string; sealed: string; attestation: string };
  tlsSpkiSha256: string;
  /** The signing key first, then retired keys: 1..4 (binding v2's receipt_keys bound). */
  receiptKeys: { spkiSha256: string; notBefore: string; notAfter: string }[];
}

export const MAX_STATUS_BYTES = 64 * 1024;
/** The same bounds as the sealed-secrets file's identity field (enclave/secrets/sealed-file.ts). */
const IDENTITY_BYTES = { dataKey: [1, 6144], iv: [12, 12], sealed: [17, 8192 + 16], attestation: [1, 16 * 1024] } as const;
const MAX_RECEIPT_KEYS = 4;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX32 = /^[0-9a-f]{64}$/;
const CODE = /^ERR_[A-Z0-9_]{1,64}$/;
const VSOCK = /^vsock:\/\/\d{1,10}:\d{1,10}$/;

const malformed = (message: string) => new ProvisionSendError("ERR_PROVISION_MALFORMED", `enclave status: ${message}`);

export function decodeStatus(body: Uint8Array): BootStatus {
  if (body.length > MAX_STATUS_BYTES) throw new ProvisionSendError("ERR_PROVISION_TOO_LARGE", `enclave status: ${body.length} bytes, at most ${MAX_STATUS_BYTES} allowed`);
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
    return { status: "ready", configSha256: v.configSha256, policySha256: v.policySha256, tlsSpkiSha256: v.tlsSpkiSha256, ...(typeof v.port === "number" && { port: v.port }), ...(typeof v.vsock === "string" && { vsock: v.vsock }) };
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
  if (got.length !== keys.length || keys.some((k) => !Object.prototype.hasOwnProperty.call(obj, k))) throw malformed(`${where} must have exactly ${keys.map((k) => `"${k}"`).join(", ")}`);
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
    if (isoTime(k.notBefore, `"receiptKeys[${i}].notBefore"`) >= isoTime(k.notAfter, `"receiptKeys[${i}].notAfter"`)) throw malformed(`"receiptKeys[${i}]" has notBefore >= notAfter`);
    return { spkiSha256: k.spkiSha256, notBefore: k.notBefore as string, notAfter: k.notAfter as string };
  });
  return { status: "identity", identity, tlsSpkiSha256: v.tlsSpkiSha256, receiptKeys };
}
