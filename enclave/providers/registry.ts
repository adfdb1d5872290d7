import { capabilitiesOf, type ProviderKind } from "../../attestation/trust-policy.js";
import { withCapabilities } from "./capabilities.js";
import { ConfigError, type ProviderConfig } from "../runtime-config.js";
import type { SecretSource } from "../secrets.js";
import { anthropicModule } from "./anthropic/index.js";
import { geminiModule } from "./gemini/index.js";
import { localModule } from "./local/index.js";
import { bedrockModule } from "./bedrock/index.js";
import type { ProviderEnvironment, ProviderModule } from "./module.js";
import { openaiModule } from "./openai/index.js";
import type { ProviderAdapter } from "./types.js";

/**
 * Every provider the enclave can speak to, one line each. A new provider is
 * a folder under enclave/providers/ exporting a ProviderModule, one line
 * here, and its kind in attestation/trust-policy.ts (the list a client
 * reads in the attested policy).
 */
export const PROVIDER_MODULES: readonly ProviderModule[] = Object.freeze([openaiModule, anthropicModule, geminiModule, bedrockModule, localModule]);

/** The module serving a kind, or undefined for a kind no module serves. */
export function providerModuleFor(kind: ProviderKind): ProviderModule | undefined {
  return PROVIDER_MODULES.find((m) => m.kinds.includes(kind));
}

/**
 * Builds one adapter per configured provider, held to its effective
 * capabilities (capabilities.ts). Keys are fetched per call. Refused at
 * boot rather than per request: a kind no module serves (the trust
 * policy parser admits only known kinds, so the two lists drifted), and a
 * capability the policy gives a provider whose adapter has no method for
 * it (the catalog and the module drifted). A provider the client was
 * promised must not silently be missing or answer 400 later.
 */
export function createAdapters(providers: ProviderConfig[], secrets: SecretSource, env: ProviderEnvironment = {}): Map<string, ProviderAdapter> {
  const adapters = new Map<string, ProviderAdapter>();
  for (const p of providers) {
    const module = providerModuleFor(p.kind);
    if (module === undefined) throw new ConfigError(`provider "${p.name}": no adapter serves kind ${JSON.stringify(p.kind)}`);
    const adapter = module.create(p, secrets, env);
    adapters.set(p.name, withCapabilities(adapter, requireCapabilityCalls(p, adapter)));
  }
  return adapters;
}

/** The provider's effective capabilities, once its adapter is seen to have a call for each (else ConfigError naming the provider). */
export function requireCapabilityCalls(p: ProviderConfig, adapter: ProviderAdapter): ReturnType<typeof capabilitiesOf> {
  const caps = capabilitiesOf(p);
  for (const c of ["embeddings", "images"] as const) {
    if (caps[c] && typeof adapter[c] !== "function") throw new ConfigError(`provider "${p.name}": kind ${p.kind} is to serve ${c}, but its adapter has no ${c} call`);
  }
  return caps;
}
