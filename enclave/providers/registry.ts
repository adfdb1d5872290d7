import type { ProviderConfig } from "../runtime-config.js";
import type { SecretSource } from "../secrets.js";
import { createAnthropicAdapter } from "./anthropic.js";
import { createGeminiAdapter } from "./gemini.js";
import { createLocalAdapter } from "./local.js";
import { createOpenAIAdapter } from "./openai.js";
import type { ProviderAdapter } from "./types.js";

/** Builds one adapter per configured provider. Keys are fetched per call. */
export function createAdapters(providers: ProviderConfig[], secrets: SecretSource): Map<string, ProviderAdapter> {
  const adapters = new Map<string, ProviderAdapter>();
  for (const p of providers) {
    const secret = p.secret;
    const apiKey = () => (secret ? secrets.get(secret) : Promise.resolve(""));
    switch (p.kind) {
      case "local":
        adapters.set(p.name, createLocalAdapter({ name: p.name }));
        break;
      case "openai":
      case "openai-compatible":
      case "xai":
        adapters.set(
          p.name,
          createOpenAIAdapter({
            name: p.name,
            // xAI speaks the OpenAI wire format at its fixed origin (attestation/trust-policy.ts).
            kind: p.kind === "xai" ? "openai-compatible" : p.kind,
            baseUrl: p.baseUrl,
            ...(secret && { apiKey }),
            ...(p.capabilities && { capabilities: p.capabilities }),
          }),
        );
        break;
      case "anthropic":
        adapters.set(p.name, createAnthropicAdapter({ name: p.name, baseUrl: p.baseUrl, apiKey }));
        break;
      case "gemini":
        adapters.set(p.name, createGeminiAdapter({ name: p.name, baseUrl: p.baseUrl, apiKey }));
        break;
    }
  }
  return adapters;
}
