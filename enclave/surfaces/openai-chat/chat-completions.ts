import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { signedStream } from "../../http/signed-stream.js";
import type { ChatRequest } from "../../providers/types.js";
import { callChat, openChatStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { openaiStreamEncoder } from "./openai-stream-encoder.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/** POST /v1/chat/completions: the OpenAI chat API over every provider, streamed or not. */
export function chatCompletionsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function chatCompletions(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      throw new GatewayError("invalid_request", "`messages` must be a non-empty array.");
    }
    if (body.stream !== undefined && typeof body.stream !== "boolean") throw new GatewayError("invalid_request", "`stream` must be a boolean.");
    const routes = routeRequest(router, ex, client, body.model);
    // OpenAI's own headers (beta, organization, project) for kind openai; bounded, never logged.
    const clientHeaders = openaiClientHeaders(view.headers);
    const request = body as unknown as ChatRequest;
    if (request.stream === true) {
      ex.streams();
      const opened = await openChatStream(routes, request, view.signal, config.limits, deps.upstream, clientHeaders);
      ex.answered(opened, opened.value.first.model);
      return signedStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), openaiStreamEncoder);
    }
    const result = await callChat(routes, request, view.signal, config.limits, deps.upstream, clientHeaders);
    ex.answered(result, result.value.model);
    return responder.json(ex, 200, result.value);
  }
  return new Hono<GatewayEnv>().post("/chat/completions", modelCallAdmission(s, "chat.completions", "openai"), chatCompletions);
}
