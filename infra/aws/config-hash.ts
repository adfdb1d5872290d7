import { readFileSync } from "node:fs";
import { attestedConfigHash } from "../../enclave/config-hash.js";

/**
 * The config hash the enclave will attest for these files: the enclave's own
 * `attestedConfigHash` (enclave/config-hash.ts, which imports nothing but
 * node:crypto, so the CDK app does not load the gateway). The relay sends the
 * files' exact bytes, and the S3 copy preserves them, so this is the value
 * clients see in the attestation.
 */
export function expectedConfigSha256(runtimeConfigFile: string, sealedSecretsFile?: string): string {
  const sealed = sealedSecretsFile === undefined ? undefined : new Uint8Array(readFileSync(sealedSecretsFile));
  return Buffer.from(attestedConfigHash(new Uint8Array(readFileSync(runtimeConfigFile)), sealed)).toString("hex");
}
