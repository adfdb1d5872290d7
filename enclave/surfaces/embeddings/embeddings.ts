import { Hono } from "hono";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { openaiUnaryCall } from "../openai-unary-call.js";

/** POST /v1/embeddings: the OpenAI embeddings API, for providers that offer it. */
export function embeddingsApi(s: GatewayServices): Hono<GatewayEnv> {
  const embeddings = openaiUnaryCall(s, (a) => a.embeddings?.bind(a), "This model's provider does not offer embeddings.");
  return new Hono<GatewayEnv>().post("/embeddings", modelCallAdmission(s, "embeddings", "openai"), embeddings);
}
