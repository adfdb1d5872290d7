import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { anthropicRequestToOpenAI } from "../../providers/anthropic/index.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { anthropicClientHeaders, refuseUntranslatableBetas } from "./client-headers.js";
import { estimateInputTokens } from "./estimate-tokens.js";

/**
 * POST /v1/messages/count_tokens. The body is always exactly
 * `{"input_tokens": n}` (what the SDK parses); the `x-egw-token-count`
 * header says where n came from:
 *  - `provider`: Anthropic's own count_tokens (native pass-through, betas
 *    forwarded) or Gemini's countTokens over the translated request;
 *  - `estimate`: every other provider kind (estimate-tokens.ts), no
 *    upstream call.
 */
export const TOKEN_COUNT_HEADER = "x-egw-token-count";

export function countTokensApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function countTokens(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    const headers = anthropicClientHeaders(view.headers);
    if (!Array.isArray(body.messages)) throw new GatewayError("invalid_request", "`messages` must be an array.");
    const routes = routeRequest(router, ex, client, body.model);
    const result = await callOnce<{ value: Record<string, unknown>; source: "provider" | "estimate" }>(routes, view.signal, config.limits, deps.upstream, async (route, ctx) => {
      const native = route.adapter.native?.countTokens;
      if (native) return { value: await native(body, ctx, headers), source: "provider" };
      refuseUntranslatableBetas(headers);
      if (route.adapter.countTokens) {
        // The translation wants max_tokens, which a count has none of; it changes nothing counted.
        const canonical = anthropicRequestToOpenAI({ ...body, max_tokens: 1 });
        return { value: { input_tokens: await route.adapter.countTokens(canonical, ctx) }, source: "provider" };
      }
      anthropicRequestToOpenAI({ ...body, max_tokens: 1 }); // the same checks as a real call would get
      return { value: { input_tokens: estimateInputTokens(body) }, source: "estimate" };
    });
    // An estimate asked nobody: its receipt names no upstream.
    if (result.value.source === "provider") ex.answered(result, undefined);
    return responder.json(ex, 200, result.value.value, { [TOKEN_COUNT_HEADER]: result.value.source });
  }
  return new Hono<GatewayEnv>().post("/messages/count_tokens", modelCallAdmission(s, "messages.count_tokens", "anthropic"), countTokens);
}
