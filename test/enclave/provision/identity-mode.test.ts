import { splitConfig } from "../../helpers/split-config.js";
import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../../enclave/observability/log.js";
import { generateIdentityFromBundle, identityRequestOptions } from "../../../enclave/provision/identity-mode.js";
import { ProvisionError } from "../../../enclave/provision/index.js";
import { configJson } from "../../helpers/enclave-harness.js";

/**
 * The enclave's own check of an identity request against the sealed file
 * (the host checks the same, but the enclave trusts no host): a rotation
 * must name its overlap, a first identity must not carry fields it would
 * ignore. The KMS path is covered end to end in
 * test/infra/identity-provision-e2e.test.ts.
 */
const DAY = 24 * 3600_000;

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionError);
    return (err as ProvisionError).code;
  }
  throw new Error("expected a throw");
}

describe("identityRequestOptions", () => {
  it("turns days into the generator's milliseconds", () => {
    expect(identityRequestOptions({ validityDays: 30 }, false)).toEqual({ validityMs: 30 * DAY, rotateTls: false });
    expect(identityRequestOptions({ validityDays: 1825, overlapDays: 0 }, true)).toEqual({ validityMs: 1825 * DAY, overlapMs: 0, rotateTls: false });
    expect(identityRequestOptions({ validityDays: 7, overlapDays: 2, rotateTls: true }, true)).toEqual({ validityMs: 7 * DAY, overlapMs: 2 * DAY, rotateTls: true });
    expect(identityRequestOptions({ validityDays: 7, overlapDays: 2, rotateTls: false }, true).rotateTls).toBe(false);
  });

  it("refuses a rotation without overlapDays, and overlapDays or rotateTls for a first identity (ERR_PROVISION_IDENTITY)", () => {
    expect(codeOf(() => identityRequestOptions({ validityDays: 30 }, true))).toBe("ERR_PROVISION_IDENTITY");
    expect(codeOf(() => identityRequestOptions({ validityDays: 30, rotateTls: true }, true))).toBe("ERR_PROVISION_IDENTITY");
    expect(codeOf(() => identityRequestOptions({ validityDays: 30, overlapDays: 1 }, false))).toBe("ERR_PROVISION_IDENTITY");
    expect(codeOf(() => identityRequestOptions({ validityDays: 30, rotateTls: true }, false))).toBe("ERR_PROVISION_IDENTITY");
    expect(codeOf(() => identityRequestOptions({ validityDays: 30, rotateTls: false }, false))).toBe("ERR_PROVISION_IDENTITY");
  });

  // An attester that fails the test if reached: every refusal here comes before any attestation or KMS call.
  const attester = { kind: "simulated" as const, attest: () => Promise.reject(new Error("not reached")), close: async () => {} } as never;
  const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret" };
  const sealed = (identity: boolean) =>
    new TextEncoder().encode(
      JSON.stringify({
        version: 1,
        keyId: "alias/egw",
        region: "eu-west-1",
        secrets: { A: "AAAA" },
        ...(identity && { identity: { dataKey: "AAAA", iv: Buffer.alloc(12).toString("base64"), sealed: Buffer.alloc(40).toString("base64"), attestation: "AAAA" } }),
      }),
    );
  const generate = (bundle: Parameters<typeof generateIdentityFromBundle>[0]["bundle"]) =>
    generateIdentityFromBundle({ bundle, attester, log: memoryLogger(), now: () => new Date() });

  it("generateIdentityFromBundle checks the request against the trust policy and the file the bundle carries, before any KMS call", async () => {
    const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const docs = splitConfig(configJson(), { identity: { mode: "sealed", kmsKeyArn: ARN } });
    const inputs = { trustPolicyBytes: new TextEncoder().encode(docs.trustPolicy), operationsBytes: new TextEncoder().encode(docs.operations) };
    await expect(generate({ ...inputs })).rejects.toMatchObject({ code: "ERR_PROVISION_IDENTITY" });
    await expect(generate({ ...inputs, sealedSecrets: { file: sealed(true), credentials: creds }, identity: { generate: { validityDays: 30 } } })).rejects.toMatchObject({
      code: "ERR_PROVISION_IDENTITY",
    });
    await expect(
      generate({ ...inputs, sealedSecrets: { file: sealed(false), credentials: creds }, identity: { generate: { validityDays: 30, overlapDays: 1 } } }),
    ).rejects.toMatchObject({
      code: "ERR_PROVISION_IDENTITY",
    });
    // Both inputs and the sealed file are parsed as at boot, with their codes.
    await expect(
      generate({
        ...inputs,
        trustPolicyBytes: new TextEncoder().encode("{}"),
        sealedSecrets: { file: sealed(false), credentials: creds },
        identity: { generate: { validityDays: 30 } },
      }),
    ).rejects.toMatchObject({
      code: "ERR_TRUST_POLICY_INVALID",
    });
    await expect(
      generate({
        ...inputs,
        operationsBytes: new TextEncoder().encode("{}"),
        sealedSecrets: { file: sealed(false), credentials: creds },
        identity: { generate: { validityDays: 30 } },
      }),
    ).rejects.toMatchObject({
      code: "ERR_CONFIG",
    });
    await expect(
      generate({ ...inputs, sealedSecrets: { file: new TextEncoder().encode("{}"), credentials: creds }, identity: { generate: { validityDays: 30 } } }),
    ).rejects.toMatchObject({
      code: "ERR_SEALED_FILE_MALFORMED",
    });
    // A trust policy whose identity is ephemeral makes no shared identity, whatever the host asks.
    const ephemeral = splitConfig(configJson());
    await expect(
      generate({
        trustPolicyBytes: new TextEncoder().encode(ephemeral.trustPolicy),
        operationsBytes: inputs.operationsBytes,
        sealedSecrets: { file: sealed(false), credentials: creds },
        identity: { generate: { validityDays: 30 } },
      }),
    ).rejects.toMatchObject({ code: "ERR_IDENTITY_POLICY" });
  });
});
