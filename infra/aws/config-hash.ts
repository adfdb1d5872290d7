import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/**
 * The config hash the enclave will attest for these files, as
 * enclave/boot.ts `attestedConfigHash` computes it (SHA-256 of the runtime
 * config bytes; with sealed secrets, SHA-256(SHA-256(config) ‖ SHA-256(file))).
 * Computed here rather than imported, so the CDK app does not load the
 * gateway; test/infra/aws checks that both agree. The relay sends the files'
 * exact bytes, and the S3 copy preserves them, so this is the value clients
 * see in the attestation.
 */
export function expectedConfigSha256(runtimeConfigFile: string, sealedSecretsFile?: string): string {
  const config = sha256(readFileSync(runtimeConfigFile));
  if (sealedSecretsFile === undefined) return config.toString("hex");
  return sha256(config, sha256(readFileSync(sealedSecretsFile))).toString("hex");
}
