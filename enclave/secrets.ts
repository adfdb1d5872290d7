import { GatewayError } from "./errors.js";

/**
 * Where provider API keys come from. Development: the environment (read once
 * by enclave/config.ts and handed in as a map). Production: KMS-sealed blobs
 * opened with the enclave's attestation (secrets/kms-source.ts). Values live only in
 * memory and are never logged; a missing key fails the call, not the boot,
 * so one unconfigured provider does not take the others down.
 */
export interface SecretSource {
  get(name: string): Promise<string>;
  has(name: string): boolean;
}

export function staticSecrets(values: ReadonlyMap<string, string>): SecretSource {
  return {
    has: (name) => (values.get(name) ?? "") !== "",
    async get(name) {
      const value = values.get(name);
      if (value === undefined || value === "") {
        throw new GatewayError("upstream_unreachable", "The provider's API key is not configured in this enclave.");
      }
      return value;
    },
  };
}
