import type { ProviderKind } from "../../attestation/trust-policy.js";
import type { ProviderConfig } from "../runtime-config.js";
import type { SecretSource } from "../secrets.js";
import type { ProviderAdapter } from "./types.js";

/**
 * What each provider folder exports (its index.ts) and registry.ts lists:
 * the trust-policy kinds it serves and how to build an adapter for one
 * configured provider. The kinds are the trust policy's own
 * (attestation/trust-policy.ts PROVIDER_KINDS, which attestation/ keeps
 * free of our imports); test/enclave/providers/registry.test.ts checks that
 * the registry serves exactly those, each by one module.
 */
export interface ProviderModule {
  readonly kinds: readonly ProviderKind[];
  create(config: ProviderConfig, secrets: SecretSource, env?: ProviderEnvironment): ProviderAdapter;
}

/** What the host handed in besides sealed secrets, for the kinds that use it. */
export interface ProviderEnvironment {
  /** The role credentials the host provisions (as for KMS): Bedrock signs with them once STS has confirmed whose they are. */
  awsCredentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * The provider's key, fetched on every call (sealed secrets may rotate in
 * memory). A provider without a secret sends "", which the adapters that
 * need a key refuse or the upstream rejects.
 */
export function apiKeyOf(config: ProviderConfig, secrets: SecretSource): () => Promise<string> {
  const secret = config.secret;
  return () => (secret ? secrets.get(secret) : Promise.resolve(""));
}
