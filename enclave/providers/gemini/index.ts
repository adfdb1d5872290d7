import { apiKeyOf, type ProviderModule } from "../module.js";
import { createGeminiAdapter } from "./gemini-adapter.js";

/** Google's Gemini API (v1beta REST). */
export const geminiModule: ProviderModule = {
  kinds: ["gemini"],
  create: (config, secrets) => createGeminiAdapter({ name: config.name, baseUrl: config.baseUrl, apiKey: apiKeyOf(config, secrets) }),
};
