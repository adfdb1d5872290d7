import { ProvisionSendError } from "./errors.js";

/**
 * The enclave's reply (docs/PROTOCOL.md, "Boot provisioning"), parsed as
 * input from a peer: bounded, exact fields, typed. It is not signed and
 * proves nothing (the host could forge it to itself); it tells the operator
 * whether the enclave came up and, if not, its stable error code.
 */
export type BootStatus =
  | { status: "ready"; configSha256: string; tlsSpkiSha256: string; port?: number; vsock?: string }
  | { status: "failed"; code: string; message: string };

export const MAX_STATUS_BYTES = 64 * 1024;
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
    const allowed = ["status", "configSha256", "tlsSpkiSha256", "port", "vsock"];
    if (keys.some((k) => !allowed.includes(k))) throw malformed("unknown field in a ready status");
    if (typeof v.configSha256 !== "string" || !HEX32.test(v.configSha256)) throw malformed(`"configSha256" expected 64 lower-case hex digits`);
    if (typeof v.tlsSpkiSha256 !== "string" || !HEX32.test(v.tlsSpkiSha256)) throw malformed(`"tlsSpkiSha256" expected 64 lower-case hex digits`);
    if (v.port !== undefined && (typeof v.port !== "number" || !Number.isInteger(v.port) || v.port < 1 || v.port > 65535)) throw malformed(`"port" expected 1..65535`);
    if (v.vsock !== undefined && (typeof v.vsock !== "string" || !VSOCK.test(v.vsock))) throw malformed(`"vsock" expected vsock://cid:port`);
    return { status: "ready", configSha256: v.configSha256, tlsSpkiSha256: v.tlsSpkiSha256, ...(typeof v.port === "number" && { port: v.port }), ...(typeof v.vsock === "string" && { vsock: v.vsock }) };
  }
  if (v.status === "failed") {
    if (keys.length !== 3 || typeof v.code !== "string" || typeof v.message !== "string") throw malformed(`a failed status has exactly "status", "code" and "message"`);
    if (!CODE.test(v.code)) throw malformed(`"code" expected ERR_ and upper-case letters, digits or _`);
    if (v.message.length > 1024) throw malformed(`"message" is longer than 1024 characters`);
    return { status: "failed", code: v.code, message: v.message };
  }
  throw malformed(`"status" expected "ready" or "failed"`);
}
