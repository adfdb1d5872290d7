import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { signedStream } from "../../http/signed-stream.js";
import type { ChatRequest } from "../../providers/types.js";
import { anthropicRequestToOpenAI, completionToAnthropicMessage } from "../../providers/anthropic/index.js";
import { callOnce, openStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { anthropicStreamEncoder } from "./anthropic-stream-encoder.js";
import { anthropicClientHeaders, refuseUntranslatableBetas } from "./client-headers.js";
import { translatedMessagesStream } from "./translated-messages-stream.js";

/**
 * POST /v1/messages: the Anthropic Messages API over any provider.
 * Translated to the canonical request and back, so every model is
 * reachable with the Anthropic SDK unchanged; Anthropic routes pass the
 * request through untouched, with the client's anthropic-version and
 * anthropic-beta headers (client-headers.ts: refused on translated routes).
 */
export function messagesApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function messages(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    if (!Array.isArray(body.messages)) throw new GatewayError("invalid_request", "`messages` must be an array.");
    if (body.stream !== undefined && typeof body.stream !== "boolean") throw new GatewayError("invalid_request", "`stream` must be a boolean.");
    const headers = anthropicClientHeaders(view.headers);
    const routes = routeRequest(router, ex, client, body.model);
    // Translated once, and only if a non-Anthropic route is tried.
    let translated: ChatRequest | undefined;
    const canonical = () => (translated ??= anthropicRequestToOpenAI(body));
    if (!routes[0]!.adapter.native) {
      refuseUntranslatableBetas(headers);
      canonical();
    }
    if (body.stream === true) {
      ex.streams();
      // The model the provider reported in its first event. Attempts run one
      // after another and each starts by clearing it, so once openStream
      // returns it is the answering attempt's.
      let reported: unknown;
      const onModel = (model: unknown) => (reported = model);
      const opened = await openStream<string>(routes, view.signal, config.limits, deps.upstream, (route, ctx) => {
        reported = undefined;
        if (route.adapter.native) return route.adapter.native.messagesStream(body, ctx, onModel, headers);
        refuseUntranslatableBetas(headers);
        return translatedMessagesStream(route, canonical(), ex.model, ctx, onModel);
      });
      ex.answered(opened, reported);
      return signedStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), anthropicStreamEncoder);
    }
    const result = await callOnce<{ bytes: Uint8Array; model: unknown }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      if (route.adapter.native) return route.adapter.native.messages(body, ctx, headers);
      refuseUntranslatableBetas(headers);
      const completion = await route.adapter.chat(canonical(), ctx);
      return {
        bytes: new TextEncoder().encode(JSON.stringify(completionToAnthropicMessage(completion, { provider: route.adapter.info.name }))),
        model: completion.model,
      };
    });
    ex.answered(result, result.value.model);
    return responder.finish(ex, 200, result.value.bytes);
  }
  return new Hono<GatewayEnv>().post("/messages", modelCallAdmission(s, "messages", "anthropic"), messages);
}
