import { describe, expect, it } from "vitest";
import { checkKmsEndpoint } from "../../../enclave/secrets/kms-endpoint.js";

describe("KMS endpoints a Nitro enclave accepts from the host", () => {
  it("accepts AWS KMS in the file's region: regional, FIPS, VPC endpoint, China partition, or no override", () => {
    for (const endpoint of [
      undefined,
      "https://kms.eu-west-1.amazonaws.com",
      "https://kms.eu-west-1.amazonaws.com/",
      "https://kms.eu-west-1.amazonaws.com:443",
      "https://kms-fips.eu-west-1.amazonaws.com",
      "https://vpce-0a1b2c3d4e5f-abcdefgh.kms.eu-west-1.vpce.amazonaws.com",
    ]) {
      expect(() => checkKmsEndpoint(endpoint, "eu-west-1", "nsm"), String(endpoint)).not.toThrow();
    }
    expect(() => checkKmsEndpoint("https://kms.cn-north-1.amazonaws.com.cn", "cn-north-1", "nsm")).not.toThrow();
  });

  it("refuses anything the host could run itself", () => {
    for (const endpoint of [
      "http://kms.eu-west-1.amazonaws.com",
      "https://kms.us-east-1.amazonaws.com",
      "https://kms.eu-west-1.amazonaws.com.evil.example",
      "https://evil.example",
      "https://127.0.0.1:4566",
      "https://kms.eu-west-1.amazonaws.com:8443",
      "https://kms.eu-west-1.amazonaws.com/proxy",
      "https://user:pw@kms.eu-west-1.amazonaws.com",
      "https://xkms.eu-west-1.amazonaws.com",
      "not a url",
    ]) {
      expect(() => checkKmsEndpoint(endpoint, "eu-west-1", "nsm"), endpoint).toThrow(expect.objectContaining({ code: "ERR_KMS_ENDPOINT" }));
    }
  });

  it("lets the simulated NSM use a local KMS (development and tests)", () => {
    expect(() => checkKmsEndpoint("http://127.0.0.1:4566", "eu-west-1", "simulated")).not.toThrow();
  });
});

describe("the boot refuses a host-named endpoint on Nitro", () => {
  it("stops before any KMS call when the attester is the NSM and the endpoint is not AWS KMS", async () => {
    const { kmsClientFor } = await import("../../../enclave/boot.js");
    const { loadRuntimeConfig } = await import("../../../enclave/runtime-config.js");
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const config = loadRuntimeConfig(enc({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } }), enc({ version: 1, clients: [] }), {
      dev: false,
    });
    const sealed = { file: new Uint8Array(), credentials: { accessKeyId: "AKIAEXAMPLE000000000", secretAccessKey: "x" }, endpoint: "https://kms.attacker.example" };
    const noFetch = (() => Promise.reject(new Error("no network"))) as unknown as typeof fetch;
    expect(() => kmsClientFor(config, "eu-west-1", sealed, noFetch, { kind: "nsm" })).toThrow(expect.objectContaining({ code: "ERR_KMS_ENDPOINT" }));
    expect(() => kmsClientFor(config, "eu-west-1", sealed, noFetch, { kind: "simulated" })).not.toThrow();
  });
});

describe("the boot refuses a host-named endpoint on Nitro before the trust policy's egress admits it", () => {
  it("runtimeConfigFor checks the override against each key ARN's region first", async () => {
    const { runtimeConfigFor } = await import("../../../enclave/boot.js");
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const trustPolicyBytes = enc({ version: 1, providers: [{ name: "o", kind: "openai", secret: "K" }], secrets: { kmsKeyArn: ARN }, identity: { mode: "ephemeral" } });
    const operationsBytes = enc({ version: 1, clients: [] });
    const sealed = (endpoint: string) => ({ file: new Uint8Array(), credentials: { accessKeyId: "AKIAEXAMPLE000000000", secretAccessKey: "x" }, endpoint });
    for (const endpoint of ["https://kms.attacker.example", "https://kms.us-east-1.amazonaws.com"]) {
      expect(() => runtimeConfigFor({ trustPolicyBytes, operationsBytes, attester: { kind: "nsm" } as never, sealedSecrets: sealed(endpoint) })).toThrow(
        expect.objectContaining({ code: "ERR_KMS_ENDPOINT" }),
      );
    }
    const ok = runtimeConfigFor({ trustPolicyBytes, operationsBytes, attester: { kind: "nsm" } as never, sealedSecrets: sealed("https://kms.eu-west-1.amazonaws.com") });
    expect(ok.egressAllowlist).toEqual(["api.openai.com:443", "kms.eu-west-1.amazonaws.com:443"]);
  });
});
