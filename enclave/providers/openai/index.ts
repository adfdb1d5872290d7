import type { ProviderModule } from "../module.js";
import { apiKeyOf } from "../module.js";
import { createOpenAIAdapter } from "./openai-adapter.js";

/** OpenAI, and every endpoint that speaks its wire format. */
export const openaiModule: ProviderModule = {
  kinds: ["openai", "openai-compatible", "xai"],
  create(config, secrets) {
    return createOpenAIAdapter({
      name: config.name,
      // xAI speaks the OpenAI wire format at its fixed origin (attestation/trust-policy.ts).
      kind: config.kind === "openai" ? "openai" : "openai-compatible",
      baseUrl: config.baseUrl,
      // No secret, no authorization header (local Ollama / vLLM).
      ...(config.secret && { apiKey: apiKeyOf(config, secrets) }),
      ...(config.capabilities && { capabilities: config.capabilities }),
    });
  },
};

export { frameSse, RESPONSES_TERMINAL_EVENTS } from "./openai-native-responses.js";
