import type { ProviderKind } from "../../attestation/trust-policy.js";
import { ConfigError, type ProviderConfig } from "../runtime-config.js";
import type { SecretSource } from "../secrets.js";
import { anthropicModule } from "./anthropic/index.js";
import { geminiModule } from "./gemini/index.js";
import { localModule } from "./local/index.js";
import type { ProviderModule } from "./module.js";
import { openaiModule } from "./openai/index.js";
import type { ProviderAdapter } from "./types.js";

/**
 * Every provider the enclave can speak to, one line each. A new provider is
 * a folder under enclave/providers/ exporting a ProviderModule, one line
 * here, and its kind in attestation/trust-policy.ts (the list a client
 * reads in the attested policy).
 */
export const PROVIDER_MODULES: readonly ProviderModule[] = Object.freeze([openaiModule, anthropicModule, geminiModule, localModule]);

/** The module serving a kind, or undefined for a kind no module serves. */
export function providerModuleFor(kind: ProviderKind): ProviderModule | undefined {
  return PROVIDER_MODULES.find((m) => m.kinds.includes(kind));
}

/**
 * Builds one adapter per configured provider. Keys are fetched per call.
 * A kind no module serves is refused rather than skipped: the trust policy
 * parser admits only known kinds, so this means the two lists drifted, and
 * a provider the client was promised must not silently be missing.
 */
export function createAdapters(providers: ProviderConfig[], secrets: SecretSource): Map<string, ProviderAdapter> {
  const adapters = new Map<string, ProviderAdapter>();
  for (const p of providers) {
    const module = providerModuleFor(p.kind);
    if (module === undefined) throw new ConfigError(`provider "${p.name}": no adapter serves kind ${JSON.stringify(p.kind)}`);
    adapters.set(p.name, module.create(p, secrets));
  }
  return adapters;
}
