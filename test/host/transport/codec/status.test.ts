import { describe, expect, it } from "vitest";
import { ProvisionError } from "../../../../host/transport/codec/provision-errors.js";
import { decodeStatus, encodeStatus, failedStatus, MAX_STATUS_BYTES } from "../../../../host/transport/codec/status.js";

const body = (s: string | object) => new TextEncoder().encode(typeof s === "string" ? s : JSON.stringify(s));
const ready = { status: "ready" as const, configSha256: "a".repeat(64), policySha256: "f".repeat(64), tlsSpkiSha256: "b".repeat(64), port: 443 };
const identity = {
  status: "identity" as const,
  identity: {
    dataKey: Buffer.alloc(184, 7).toString("base64"),
    iv: Buffer.alloc(12, 1).toString("base64"),
    sealed: Buffer.alloc(420, 9).toString("base64"),
    attestation: Buffer.alloc(4500, 4).toString("base64"),
  },
  tlsSpkiSha256: "c".repeat(64),
  receiptKeys: [
    { spkiSha256: "d".repeat(64), notBefore: "2030-01-01T00:00:00.000Z", notAfter: "2030-01-31T00:00:00.000Z" },
    { spkiSha256: "e".repeat(64), notBefore: "2029-12-01T00:00:00.000Z", notAfter: "2030-01-02T00:00:00.000Z" },
  ],
};

function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionError);
    return (err as ProvisionError).code;
  }
  throw new Error("expected a throw");
}

describe("the enclave's status, as the host reads it", () => {
  it("round-trips the enclave's encoder (ready with and without port/vsock, failed)", () => {
    for (const s of [
      ready,
      { ...ready, vsock: "vsock://4294967295:8443" },
      { status: "ready", configSha256: "a".repeat(64), policySha256: "f".repeat(64), tlsSpkiSha256: "b".repeat(64) },
    ] as const) {
      expect(decodeStatus(encodeStatus(s).subarray(4))).toEqual(s);
    }
    const failed = failedStatus(Object.assign(new Error("no"), { code: "ERR_CONFIG" }));
    expect(decodeStatus(encodeStatus(failed).subarray(4))).toEqual({ status: "failed", code: "ERR_CONFIG", message: "no" });
  });

  it.each<[string, string | object]>([
    ["not JSON", "{"],
    ["an array", "[]"],
    ["an unknown status", { status: "booting" }],
    ["a short hash", { ...ready, configSha256: "a" }],
    ["a ready status without the policy hash", { status: "ready", configSha256: "a".repeat(64), tlsSpkiSha256: "b".repeat(64) }],
    ["a short policy hash", { ...ready, policySha256: "f".repeat(63) }],
    ["an upper-case hash", { ...ready, tlsSpkiSha256: "B".repeat(64) }],
    ["port 0", { ...ready, port: 0 }],
    ["a fractional port", { ...ready, port: 1.5 }],
    ["a bad vsock address", { ...ready, vsock: "tcp://1.2.3.4:5" }],
    ["an unknown field", { ...ready, extra: 1 }],
    ["a failed status without message", { status: "failed", code: "ERR_X" }],
    ["a code that is not ERR_", { status: "failed", code: "boom", message: "" }],
    ["a huge message", { status: "failed", code: "ERR_X", message: "m".repeat(1025) }],
  ])("refuses %s", (_w, b) => {
    expect(code(() => decodeStatus(body(b)))).toBe("ERR_PROVISION_MALFORMED");
  });

  it("round-trips an identity status, and refuses one malformed field at a time", () => {
    expect(decodeStatus(encodeStatus(identity).subarray(4))).toEqual(identity);
    const fourKeys = { ...identity, receiptKeys: [0, 1, 2, 3].map(() => identity.receiptKeys[0]!) };
    expect(decodeStatus(body(fourKeys))).toEqual(fourKeys);
    const mutate = (f: (v: Record<string, any>) => void) => {
      const v = structuredClone(identity) as Record<string, any>;
      f(v);
      return v;
    };
    const cases: Record<string, object> = {
      "an unknown field": mutate((v) => (v.extra = 1)),
      "no identity": mutate((v) => delete v.identity),
      "an identity that is a string": mutate((v) => (v.identity = "AAAA")),
      "an unknown identity field": mutate((v) => (v.identity.tls = "AAAA")),
      "a missing iv": mutate((v) => delete v.identity.iv),
      "an 11-byte iv": mutate((v) => (v.identity.iv = Buffer.alloc(11).toString("base64"))),
      "an empty data key": mutate((v) => (v.identity.dataKey = "")),
      "a data key over 6144 bytes": mutate((v) => (v.identity.dataKey = Buffer.alloc(6145).toString("base64"))),
      "a 16-byte sealed part (tag only)": mutate((v) => (v.identity.sealed = Buffer.alloc(16).toString("base64"))),
      base64url: mutate((v) => (v.identity.sealed = "_-_-")),
      "non-canonical base64": mutate((v) => (v.identity.dataKey = "QR==")),
      "no generator attestation": mutate((v) => delete v.identity.attestation),
      "an empty generator attestation": mutate((v) => (v.identity.attestation = "")),
      "a generator attestation over 16 KiB": mutate((v) => (v.identity.attestation = Buffer.alloc(16 * 1024 + 1).toString("base64"))),
      "a bad TLS hash": mutate((v) => (v.tlsSpkiSha256 = "x")),
      "no receipt keys": mutate((v) => (v.receiptKeys = [])),
      "five receipt keys": mutate((v) => (v.receiptKeys = [0, 1, 2, 3, 4].map(() => identity.receiptKeys[0]))),
      "a receipt key with an unknown field": mutate((v) => (v.receiptKeys[0].pkcs8 = "AAAA")),
      "a receipt key without notAfter": mutate((v) => delete v.receiptKeys[0].notAfter),
      "a time that is not ISO": mutate((v) => (v.receiptKeys[0].notBefore = "Jan 1 2030")),
      "a time with an offset": mutate((v) => (v.receiptKeys[0].notBefore = "2030-01-01T00:00:00.000+01:00")),
      "a time that is a number": mutate((v) => (v.receiptKeys[0].notAfter = 1893456000000)),
      "an impossible date": mutate((v) => (v.receiptKeys[0].notAfter = "2030-02-30T00:00:00.000Z")),
      "notBefore equal to notAfter": mutate((v) => (v.receiptKeys[0].notAfter = v.receiptKeys[0].notBefore)),
    };
    for (const [what, value] of Object.entries(cases))
      expect(
        code(() => decodeStatus(body(value))),
        what,
      ).toBe("ERR_PROVISION_MALFORMED");
  });

  it("refuses a status over its cap", () => {
    expect(code(() => decodeStatus(new Uint8Array(MAX_STATUS_BYTES + 1)))).toBe("ERR_PROVISION_TOO_LARGE");
  });
});
