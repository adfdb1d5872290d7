import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it, vi } from "vitest";
import { attestedConfigHash } from "../../../enclave/boot.js";
import { expectedConfigSha256 } from "../../../infra/aws/config-hash.js";
import { artifactFiles, manifestJson, PCR0, synthStacks, warningsOf, removeTestFiles } from "./fixtures.js";

// Synthesizing a stack takes seconds on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
afterAll(removeTestFiles);

const files = artifactFiles();
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("the attested config hash of a deployment", () => {
  it("is what the enclave computes, with and without sealed secrets", () => {
    const config = readFileSync(files.runtimeConfig);
    const sealed = readFileSync(files.sealedSecrets);
    expect(expectedConfigSha256(files.runtimeConfig)).toBe(hex(attestedConfigHash(config)));
    expect(expectedConfigSha256(files.runtimeConfig, files.sealedSecrets)).toBe(hex(attestedConfigHash(config, sealed)));
    expect(expectedConfigSha256(files.runtimeConfig, files.sealedSecrets)).not.toBe(expectedConfigSha256(files.runtimeConfig));
  });

  it("is a stack output, and a warning when the manifest lists other config hashes", () => {
    const listed = (hashes: string[]) => manifestJson([{ label: "v1", pcrs: { 0: PCR0 } }], { configSha256: hashes });
    const other = createHash("sha256").update("another config").digest("hex");

    const mismatch = synthStacks({ manifestJson: listed([other]) }, { sealedSecretsFile: undefined });
    const attested = expectedConfigSha256(files.runtimeConfig);
    mismatch.enclaveTemplate.hasOutput("AttestedConfigSha256", { Value: attested });
    expect(warningsOf(mismatch.enclave)).toEqual([expect.stringContaining(`config hash ${attested}`)]);

    const match = synthStacks({ manifestJson: listed([other, attested]) }, { sealedSecretsFile: undefined });
    expect(warningsOf(match.enclave)).toEqual([]);
  });
});
