import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import type { EmbeddingsRequest } from "../../providers/types.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/** POST /v1/embeddings: the OpenAI embeddings API, for providers that offer it. */
export function embeddingsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function embeddings(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    const routes = routeRequest(router, ex, client, body.model);
    // OpenAI's own headers (beta, organization, project) for kind openai; bounded, never logged.
    const clientHeaders = openaiClientHeaders(view.headers);
    const result = await callOnce<unknown>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      (route, ctx): Promise<unknown> => {
        if (!route.adapter.embeddings) throw new GatewayError("unsupported_capability", "This model's provider does not offer embeddings.");
        return route.adapter.embeddings(body as unknown as EmbeddingsRequest, ctx);
      },
      clientHeaders,
    );
    ex.answered(result, (result.value as { model?: unknown } | null)?.model);
    return responder.json(ex, 200, result.value);
  }
  return new Hono<GatewayEnv>().post("/embeddings", modelCallAdmission(s, "embeddings", "openai"), embeddings);
}
