import { Hono } from "hono";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { openaiUnaryCall } from "../openai-unary-call.js";

/** POST /v1/images/generations: the OpenAI images API, for providers that generate images. */
export function imagesApi(s: GatewayServices): Hono<GatewayEnv> {
  const imageGenerations = openaiUnaryCall(s, (a) => a.images?.bind(a), "This model's provider does not generate images.");
  return new Hono<GatewayEnv>().post("/images/generations", modelCallAdmission(s, "images", "openai"), imageGenerations);
}
