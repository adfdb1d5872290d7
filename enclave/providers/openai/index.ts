import { capabilitiesOf, PROVIDER_KINDS } from "../../../attestation/trust-policy.js";
import { kindEntry } from "../../../attestation/provider-catalog.js";
import type { ProviderModule } from "../module.js";
import { apiKeyOf } from "../module.js";
import { createOpenAIAdapter } from "./openai-adapter.js";

/** OpenAI, and every endpoint that speaks its wire format: openai-compatible entries and every preset of the catalog (attestation/provider-catalog.ts). */
export const openaiModule: ProviderModule = {
  kinds: PROVIDER_KINDS.filter((k) => kindEntry(k).wire === "openai"),
  create(config, secrets) {
    const caps = capabilitiesOf(config);
    return createOpenAIAdapter({
      name: config.name,
      // Presets speak the OpenAI wire format at their fixed origin (attestation/trust-policy.ts).
      kind: config.kind === "openai" ? "openai" : "openai-compatible",
      baseUrl: config.baseUrl,
      // No secret, no authorization header (local Ollama / vLLM). Every preset authenticates with a bearer key.
      ...(config.secret && { apiKey: apiKeyOf(config, secrets) }),
      capabilities: { chat: caps.chat, embeddings: caps.embeddings, images: caps.images, responses: caps.responses },
    });
  },
};

export { frameSse, RESPONSES_TERMINAL_EVENTS } from "./openai-native-responses.js";
