import type { Context } from "hono";
import { GatewayError } from "../errors.js";
import type { GatewayEnv } from "../http/gateway-env.js";
import type { GatewayServices } from "../http/gateway-services.js";
import { openaiClientHeaders } from "../http/openai-client-headers.js";
import type { ProviderAdapter, ProviderCallContext } from "../providers/types.js";
import { callOnce } from "../upstream.js";
import { routeRequest } from "./route-request.js";

/**
 * The handler of an OpenAI endpoint that is one JSON call to the provider
 * and its JSON answer passed on (embeddings, images): route by `model`,
 * refuse a provider without the method before anything goes upstream,
 * forward OpenAI's own headers (http/openai-client-headers.ts, kind openai
 * only), sign the answer. `method` picks the adapter's member; `refusal`
 * says what the provider does not offer.
 */
export function openaiUnaryCall(
  s: GatewayServices,
  method: (adapter: ProviderAdapter) => ((body: never, ctx: ProviderCallContext) => Promise<unknown>) | undefined,
  refusal: string,
): (c: Context<GatewayEnv>) => Promise<Response> {
  const { config, deps, responder, router } = s;
  return async function unaryCall(c) {
    const { body, client, exchange: ex, view } = c.var;
    const routes = routeRequest(router, ex, client, body.model);
    const clientHeaders = openaiClientHeaders(view.headers);
    const result = await callOnce<unknown>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      (route, ctx): Promise<unknown> => {
        const call = method(route.adapter);
        if (!call) throw new GatewayError("unsupported_capability", refusal);
        return call(body as never, ctx);
      },
      clientHeaders,
    );
    ex.answered(result, (result.value as { model?: unknown } | null)?.model);
    return responder.json(ex, 200, result.value);
  };
}
