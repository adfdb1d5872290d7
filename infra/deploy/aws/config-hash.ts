import { readFileSync } from "node:fs";
import { attestedConfigHash, attestedPolicyHash } from "../../../host/transport/codec/config-hash.js";

/**
 * The hashes the enclave will attest for these files (channel binding v3):
 * the enclave's own functions (host/transport/codec/config-hash.ts, which imports nothing
 * but node:crypto, so the CDK app does not load the gateway). The relay
 * sends the files' exact bytes, and the S3 copy preserves them, so these are
 * the values clients see in the attestation.
 */
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const read = (file: string) => new Uint8Array(readFileSync(file));

/** `config_sha256`: SHA-256(SHA-256(trust policy) ‖ SHA-256(operations) [‖ SHA-256(sealed file)]). */
export function expectedConfigSha256(trustPolicyFile: string, operationsFile: string, sealedSecretsFile?: string): string {
  return hex(attestedConfigHash(read(trustPolicyFile), read(operationsFile), sealedSecretsFile === undefined ? undefined : read(sealedSecretsFile)));
}

/** `policy_sha256`: SHA-256 of the trust policy's exact bytes, what a manifest's trust.policySha256 pins. */
export function expectedPolicySha256(trustPolicyFile: string): string {
  return hex(attestedPolicyHash(read(trustPolicyFile)));
}
