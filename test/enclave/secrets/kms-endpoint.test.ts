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
    const { parseRuntimeConfig } = await import("../../../enclave/runtime-config.js");
    const config = parseRuntimeConfig(new TextEncoder().encode(JSON.stringify({ version: 1, providers: [{ name: "local", kind: "local" }], models: {}, egressAllowlist: [], clients: [] })));
    const sealed = { file: new Uint8Array(), credentials: { accessKeyId: "AKIAEXAMPLE000000000", secretAccessKey: "x" }, endpoint: "https://kms.attacker.example" };
    const noFetch = (() => Promise.reject(new Error("no network"))) as unknown as typeof fetch;
    expect(() => kmsClientFor(config, "eu-west-1", sealed, noFetch, { kind: "nsm" })).toThrow(expect.objectContaining({ code: "ERR_KMS_ENDPOINT" }));
    expect(() => kmsClientFor(config, "eu-west-1", sealed, noFetch, { kind: "simulated" })).not.toThrow();
  });
});
