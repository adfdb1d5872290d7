import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createBootStatusMetric, defaultChainCredentials } from "../../../host/provision/index.js";

/** The host's own half of provisioning around the shared codecs: credentials and the boot-state metric. */
describe("host provisioning", () => {
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
