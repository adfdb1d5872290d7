import { apiKeyOf, type ProviderModule } from "../module.js";
import { createAnthropicAdapter } from "./anthropic-adapter.js";

/** Anthropic's Messages API, translated for chat and spoken natively on /v1/messages. */
export const anthropicModule: ProviderModule = {
  kinds: ["anthropic"],
  create: (config, secrets) => createAnthropicAdapter({ name: config.name, baseUrl: config.baseUrl, apiKey: apiKeyOf(config, secrets) }),
};

// The /v1/messages surface's codec when the routed provider is not
// Anthropic: client request → canonical, canonical answer → Message or SSE.
export { anthropicRequestToOpenAI } from "./convert-from-anthropic-messages-request.js";
export { completionToAnthropicMessage } from "./convert-to-anthropic-message.js";
export { anthropicErrorEvent, formatAnthropicSse, OpenAIToAnthropicStreamMapper } from "./encode-anthropic-stream.js";
