import { Hono } from "hono";
import type { GatewayEnv } from "./http/gateway-env.js";
import { gatewayServices, type GatewayDeps } from "./http/gateway-services.js";
import { signedErrors, signedNotFound } from "./http/middleware/receipts.js";
import { countTokensApi } from "./surfaces/anthropic-messages/count-tokens.js";
import { messagesApi } from "./surfaces/anthropic-messages/messages.js";
import { attestationApi } from "./surfaces/attestation/attestation.js";
import { audioSpeechApi } from "./surfaces/audio/speech.js";
import { audioTranscriptionsApi } from "./surfaces/audio/transcriptions.js";
import { embeddingsApi } from "./surfaces/embeddings/embeddings.js";
import { geminiApi } from "./surfaces/gemini-native/gemini-api.js";
import { healthApi } from "./surfaces/health/health.js";
import { imagesApi } from "./surfaces/images/images.js";
import { moderationsApi } from "./surfaces/moderations/moderations.js";
import { modelsApi } from "./surfaces/models/models.js";
import { completionsApi } from "./surfaces/openai-completions/completions.js";
import { chatCompletionsApi } from "./surfaces/openai-chat/chat-completions.js";
import { responsesApi } from "./surfaces/openai-responses/responses.js";

export type { GatewayDeps } from "./http/gateway-services.js";

/**
 * The enclave's HTTP service: one sub-app per client-facing API
 * (enclave/surfaces/), each a chain of the middleware in
 * enclave/http/middleware/ ending in a named handler. Every response under
 * /v1 (success, gateway error or upstream error) carries a receipt signed by
 * the attested key (http/responder.ts, http/signed-stream.ts); refusals and
 * failures are signed where they are thrown (http/middleware/receipts.ts).
 */
export function createGatewayApp(deps: GatewayDeps): Hono<GatewayEnv> {
  const services = gatewayServices(deps);
  return new Hono<GatewayEnv>()
    .route("/v1", chatCompletionsApi(services))
    .route("/v1", messagesApi(services))
    .route("/v1", responsesApi(services))
    .route("/v1", embeddingsApi(services))
    .route("/v1", imagesApi(services))
    .route("/v1", modelsApi(services))
    .route("/v1", countTokensApi(services))
    .route("/v1", moderationsApi(services))
    .route("/v1", completionsApi(services))
    .route("/v1", audioTranscriptionsApi(services))
    .route("/v1", audioSpeechApi(services))
    .route("/v1", attestationApi(services))
    .route("/v1beta", geminiApi(services))
    .route("/", healthApi(services))
    .notFound(signedNotFound(services))
    .onError(signedErrors(services));
}
