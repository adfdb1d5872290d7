import { apiKeyOf, type ProviderModule } from "../module.js";
import { createGeminiAdapter } from "./gemini-adapter.js";

/** Google's Gemini API (v1beta REST). */
export const geminiModule: ProviderModule = {
  kinds: ["gemini"],
  create: (config, secrets) => createGeminiAdapter({ name: config.name, baseUrl: config.baseUrl, apiKey: apiKeyOf(config, secrets) }),
};

// The /v1beta surface's codec when the routed provider is not Gemini: client
// request → canonical, canonical answer → GenerateContentResponse or SSE.
export { fromGeminiRequest } from "./convert-from-gemini-request.js";
export { completionToGeminiResponse } from "./convert-to-gemini-response.js";
export { CanonicalToGeminiStreamMapper, formatGeminiSse } from "./encode-gemini-stream.js";
export { estimateGeminiTokens } from "./estimate-gemini-tokens.js";
