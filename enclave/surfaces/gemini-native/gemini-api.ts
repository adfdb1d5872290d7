import { Hono } from "hono";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { authenticate } from "../../http/middleware/auth.js";
import { exchangeRecord } from "../../http/middleware/exchange-record.js";
import { nodeRequest } from "../../http/middleware/node-request.js";
import { countTokensHandler } from "./count-tokens.js";
import { embedContentHandler } from "./embed-content.js";
import { generateContentHandler, streamGenerateContentHandler } from "./generate-content.js";
import { getModelHandler, listModelsHandler } from "./list-models.js";

/**
 * The Gemini API (v1beta REST), mounted at /v1beta, so that @google/genai
 * and @ai-sdk/google work with their base URL pointed at the gateway:
 *
 * - POST /models/{model}:generateContent, :streamGenerateContent?alt=sse,
 *   :countTokens, :embedContent, :batchEmbedContents
 * - GET /models, GET /models/{model}
 *
 * The model in the path is the client's name, routed like every surface's
 * (aliases, prefix routing, the token's allowlist). Gemini routes are a
 * pass-through; other providers are translated through the canonical model.
 * The client token is accepted as `x-goog-api-key` (what the SDKs send),
 * `Authorization: Bearer`, or Google's `?key=` (the URL's query is never
 * logged, and never in a receipt). Errors are Google's
 * `{"error":{"code","message","status"}}`.
 */
export function geminiApi(s: GatewayServices): Hono<GatewayEnv> {
  const modelsFront = [nodeRequest(), exchangeRecord({ name: "gemini.models", surface: "gemini", now: s.now }), authenticate(s.clients, "gemini")] as const;
  return new Hono<GatewayEnv>()
    .post("/models/:model{.+:generateContent}", modelCallAdmission(s, "gemini.generateContent", "gemini"), generateContentHandler(s))
    .post("/models/:model{.+:streamGenerateContent}", modelCallAdmission(s, "gemini.streamGenerateContent", "gemini"), streamGenerateContentHandler(s))
    .post("/models/:model{.+:countTokens}", modelCallAdmission(s, "gemini.countTokens", "gemini"), countTokensHandler(s))
    .post("/models/:model{.+:embedContent}", modelCallAdmission(s, "gemini.embedContent", "gemini"), embedContentHandler(s, "embedContent"))
    .post("/models/:model{.+:batchEmbedContents}", modelCallAdmission(s, "gemini.batchEmbedContents", "gemini"), embedContentHandler(s, "batchEmbedContents"))
    .get("/models", ...modelsFront, listModelsHandler(s))
    .get("/models/:model{[^:]+}", ...modelsFront, getModelHandler(s));
}
