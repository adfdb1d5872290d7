import type { Context } from "hono";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { signedStream } from "../../http/signed-stream.js";
import { completionToGeminiResponse, fromGeminiRequest } from "../../providers/gemini/index.js";
import type { ChatRequest } from "../../providers/types.js";
import type { Route } from "../../router.js";
import { callOnce, openStream } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { geminiStreamEncoder } from "./gemini-stream-encoder.js";
import { modelMethodOf } from "./model-method-path.js";
import { translatedGeminiStream } from "./translated-gemini-stream.js";

/**
 * `:generateContent` and `:streamGenerateContent?alt=sse`. Gemini routes
 * pass the body through (nativeGemini); every other route gets it translated
 * to the canonical request once, and the answer translated back.
 */
function checkBody(body: Record<string, unknown>): void {
  if (!Array.isArray(body.contents) || body.contents.length === 0) throw new GatewayError("invalid_request", "`contents` must be a non-empty array.");
}

/** The request translated once, and only if a non-Gemini route is tried. */
function lazyCanonical(body: Record<string, unknown>, model: string, routes: Route[]): () => ChatRequest {
  let translated: ChatRequest | undefined;
  const canonical = () => (translated ??= fromGeminiRequest(body, model));
  // Translation errors are the client's: refuse before any upstream call.
  if (!routes[0]!.adapter.nativeGemini) canonical();
  return canonical;
}

export function generateContentHandler(s: GatewayServices) {
  const { config, deps, responder, router } = s;
  return async function generateContent(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    const { model } = modelMethodOf(c.req.path);
    checkBody(body);
    const routes = routeRequest(router, ex, client, model);
    const canonical = lazyCanonical(body, model, routes);
    const result = await callOnce<{ bytes: Uint8Array; model: unknown }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      if (route.adapter.nativeGemini) return route.adapter.nativeGemini.call("generateContent", body, ctx);
      const completion = await route.adapter.chat(canonical(), ctx);
      return {
        bytes: new TextEncoder().encode(JSON.stringify(completionToGeminiResponse(completion, { provider: route.adapter.info.name }))),
        model: completion.model,
      };
    });
    ex.answered(result, result.value.model);
    return responder.finish(ex, 200, result.value.bytes);
  };
}

export function streamGenerateContentHandler(s: GatewayServices) {
  const { config, deps, responder, router } = s;
  return async function streamGenerateContent(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view, slot } = c.var;
    const { model } = modelMethodOf(c.req.path);
    // Without alt=sse Google streams one JSON array; SDKs ask for SSE, and SSE is what carries the receipt.
    if (c.req.query("alt") !== "sse") throw new GatewayError("invalid_request", "streamGenerateContent is served as server-sent events only: add ?alt=sse.");
    checkBody(body);
    const routes = routeRequest(router, ex, client, model);
    const canonical = lazyCanonical(body, model, routes);
    ex.streams();
    // The model the first event reported; each attempt clears it first (see messages.ts).
    let reported: unknown;
    const onModel = (m: unknown) => (reported = m);
    const opened = await openStream<string>(routes, view.signal, config.limits, deps.upstream, (route, ctx) => {
      reported = undefined;
      return route.adapter.nativeGemini ? route.adapter.nativeGemini.stream(body, ctx, onModel) : translatedGeminiStream(route, canonical(), ex.model, ctx, onModel);
    });
    ex.answered(opened, reported);
    return signedStream({ responder, metrics: deps.metrics, now: s.now }, ex, opened.value, slot.handOff(), geminiStreamEncoder);
  };
}
