import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { encodeStatus, failedStatus } from "../../../enclave/provision/index.js";
import {
  createBootStatusMetric,
  decodeStatus,
  defaultChainCredentials,
  encodeBundle,
  MAX_STATUS_BYTES,
  ProvisionSendError,
  sealedFileRegion,
} from "../../../host/provision/index.js";

const body = (s: string | object) => new TextEncoder().encode(typeof s === "string" ? s : JSON.stringify(s));
const ready = { status: "ready" as const, configSha256: "a".repeat(64), tlsSpkiSha256: "b".repeat(64), port: 443 };

function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionSendError);
    return (err as ProvisionSendError).code;
  }
  throw new Error("expected a throw");
}

describe("the enclave's status, as the host reads it", () => {
  it("round-trips the enclave's encoder (ready with and without port/vsock, failed)", () => {
    for (const s of [ready, { ...ready, vsock: "vsock://4294967295:8443" }, { status: "ready", configSha256: "a".repeat(64), tlsSpkiSha256: "b".repeat(64) }] as const) {
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

  it("refuses a status over its cap", () => {
    expect(code(() => decodeStatus(new Uint8Array(MAX_STATUS_BYTES + 1)))).toBe("ERR_PROVISION_TOO_LARGE");
  });
});

describe("bundle inputs on the host", () => {
  const config = body("{}");
  const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret" };

  it("refuses what the enclave would refuse, before dialling", () => {
    expect(code(() => encodeBundle({ config: new Uint8Array() }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ config, awsCredentials: creds }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ config, kmsEndpoint: "https://kms.example.com" }))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => encodeBundle({ config, sealedSecrets: body("{}") }))).toBe("ERR_PROVISION_CREDENTIALS");
    expect(code(() => encodeBundle({ config: new Uint8Array(1024 * 1024 + 1) }))).toBe("ERR_PROVISION_TOO_LARGE");
  });

  it("reads the KMS region from a sealed-secrets file, and nothing else", () => {
    expect(sealedFileRegion(body({ version: 1, keyId: "alias/x", region: "eu-central-1", secrets: {} }))).toBe("eu-central-1");
    expect(code(() => sealedFileRegion(body({ region: "Frankfurt" })))).toBe("ERR_PROVISION_INPUT");
    expect(code(() => sealedFileRegion(body("not json")))).toBe("ERR_PROVISION_INPUT");
  });

  it("takes credentials from the SDK's default chain (here its environment provider; no network)", async () => {
    const saved = { ...process.env };
    process.env.AWS_ACCESS_KEY_ID = "AKIAENVCHAIN00000001";
    process.env.AWS_SECRET_ACCESS_KEY = "env-chain-secret";
    process.env.AWS_SESSION_TOKEN = "env-chain-token";
    try {
      expect(await defaultChainCredentials("us-east-1")).toEqual({ accessKeyId: "AKIAENVCHAIN00000001", secretAccessKey: "env-chain-secret", sessionToken: "env-chain-token" });
    } finally {
      for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it("exposes the boot state as egw_enclave_boot_status{state}", async () => {
    const registry = new Registry();
    const metric = createBootStatusMetric(registry);
    expect(await registry.metrics()).toContain('egw_enclave_boot_status{state="pending"} 1');
    metric.set("failed");
    const text = await registry.metrics();
    expect(text).toContain('egw_enclave_boot_status{state="failed"} 1');
    expect(text).toContain('egw_enclave_boot_status{state="pending"} 0');
    expect(text).toContain('egw_enclave_boot_status{state="ready"} 0');
  });
});
