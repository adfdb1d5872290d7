import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it, vi } from "vitest";
import { attestedConfigHash, attestedPolicyHash } from "../../../../enclave/boot.js";
import { expectedConfigSha256, expectedPolicySha256 } from "../../../../infra/deploy/aws/config-hash.js";
import { manifestPolicyPins } from "../../../../infra/deploy/aws/enclave-stack.js";
import { artifactFiles, manifestJson, PCR0, synthStacks, warningsOf, removeTestFiles } from "./fixtures.js";

// Synthesizing a stack takes seconds on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
afterAll(removeTestFiles);

const files = artifactFiles();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("the hashes a deployment's enclave attests", () => {
  it("config_sha256 is what the enclave computes over trust policy, operations and (when given) the sealed file", () => {
    const trust = readFileSync(files.trustPolicy);
    const ops = readFileSync(files.operations);
    const sealed = readFileSync(files.sealedSecrets);
    expect(expectedConfigSha256(files.trustPolicy, files.operations)).toBe(hex(attestedConfigHash(trust, ops)));
    expect(expectedConfigSha256(files.trustPolicy, files.operations, files.sealedSecrets)).toBe(hex(attestedConfigHash(trust, ops, sealed)));
    expect(expectedConfigSha256(files.trustPolicy, files.operations, files.sealedSecrets)).not.toBe(expectedConfigSha256(files.trustPolicy, files.operations));
  });

  it("policy_sha256 is the trust policy's alone: an operations change does not move it", () => {
    expect(expectedPolicySha256(files.trustPolicy)).toBe(hex(attestedPolicyHash(readFileSync(files.trustPolicy))));
    expect(expectedPolicySha256(files.trustPolicy)).toBe(createHash("sha256").update(readFileSync(files.trustPolicy)).digest("hex"));
    expect(expectedConfigSha256(files.trustPolicy, files.operations)).not.toBe(expectedConfigSha256(files.localTrustPolicy, files.operations));
  });

  it("are stack outputs, and a warning when the manifest lists other config hashes", () => {
    const listed = (hashes: string[]) => manifestJson([{ label: "v1", pcrs: { 0: PCR0 } }], { configSha256: hashes });
    const other = createHash("sha256").update("another config").digest("hex");
    const local = { sealedSecretsFile: undefined, trustPolicyFile: files.localTrustPolicy };

    const mismatch = synthStacks({ manifestJson: listed([other]) }, local);
    const attested = expectedConfigSha256(files.localTrustPolicy, files.operations);
    mismatch.enclaveTemplate.hasOutput("AttestedConfigSha256", { Value: attested });
    mismatch.enclaveTemplate.hasOutput("TrustPolicySha256", { Value: expectedPolicySha256(files.localTrustPolicy) });
    expect(warningsOf(mismatch.enclave)).toEqual([expect.stringContaining(`config hash ${attested}`)]);

    const match = synthStacks({ manifestJson: listed([other, attested]) }, local);
    expect(warningsOf(match.enclave)).toEqual([]);
  });
});

describe("the manifest's trust-policy pins", () => {
  const policy = expectedPolicySha256(files.trustPolicy);

  it('are read from the client\'s trust section (bytes) or its JSON form (hex); none for "any" or constraints without pins', () => {
    expect(manifestPolicyPins({ trust: { policySha256: [Buffer.from(policy, "hex")] } })).toEqual([policy]);
    expect(manifestPolicyPins({ trust: { policySha256: [policy.toUpperCase()] } })).toEqual([policy]);
    expect(manifestPolicyPins({ trust: "any" })).toBeUndefined();
    expect(manifestPolicyPins({ trust: { upstreamOrigins: ["https://api.openai.com"] } })).toBeUndefined();
    expect(manifestPolicyPins({})).toBeUndefined();
  });
});
