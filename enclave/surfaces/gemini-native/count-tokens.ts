import type { Context } from "hono";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { estimateGeminiTokens } from "../../providers/gemini/index.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { modelMethodOf } from "./model-method-path.js";

/**
 * `:countTokens`. Gemini routes ask Google, which counts with the model's
 * own tokenizer. Elsewhere there is no counter to ask: the answer is an
 * estimate (estimate-gemini-tokens.ts), in the same shape, marked by the
 * `x-egw-token-count: estimate` header so nobody bills or truncates by it
 * unawares.
 */
export const TOKEN_COUNT_HEADER = "x-egw-token-count";

export function countTokensHandler(s: GatewayServices) {
  const { config, deps, responder, router } = s;
  return async function countTokens(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    const { model } = modelMethodOf(c.req.path);
    const request = body.generateContentRequest ?? body;
    if (typeof request !== "object" || request === null || !Array.isArray((request as { contents?: unknown }).contents)) {
      throw new GatewayError("invalid_request", "`contents` (or `generateContentRequest.contents`) must be an array.");
    }
    const routes = routeRequest(router, ex, client, model);
    const result = await callOnce<{ bytes: Uint8Array; model: unknown; estimated: boolean }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      if (route.adapter.nativeGemini) return { ...(await route.adapter.nativeGemini.call("countTokens", body, ctx)), estimated: false };
      const totalTokens = estimateGeminiTokens(body);
      return { bytes: new TextEncoder().encode(JSON.stringify({ totalTokens })), model: undefined, estimated: true };
    });
    ex.answered(result, result.value.model);
    return responder.finish(ex, 200, result.value.bytes, { [TOKEN_COUNT_HEADER]: result.value.estimated ? "estimate" : "provider" });
  };
}
