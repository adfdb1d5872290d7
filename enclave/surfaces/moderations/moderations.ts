import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import { modelCallAdmission } from "../../http/admission.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { callOnce } from "../../upstream.js";
import { routeRequest } from "../route-request.js";
import { openaiClientHeaders } from "../../http/openai-client-headers.js";

/**
 * POST /v1/moderations: native on OpenAI routes (api.openai.com's
 * moderation models), deterministic on the local model
 * (providers/local/local-moderations.ts); any other provider kind is
 * refused with 400 unsupported_capability, since no translation of a
 * classifier's verdict would be honest. `model` is required here (OpenAI
 * defaults it; the gateway needs it to route).
 */
export function moderationsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { config, deps, responder, router } = s;
  async function moderations(c: Context<GatewayEnv>): Promise<Response> {
    const { body, client, exchange: ex, view } = c.var;
    if (body.input === undefined) throw new GatewayError("invalid_request", "`input` is required.");
    if (body.model === undefined) throw new GatewayError("invalid_request", "`model` is required by this gateway (it routes by model).");
    const routes = routeRequest(router, ex, client, body.model);
    // OpenAI's own headers (beta, organization, project) for kind openai; bounded, never logged.
    const clientHeaders = openaiClientHeaders(view.headers);
    const result = await callOnce<unknown>(
      routes,
      view.signal,
      config.limits,
      deps.upstream,
      (route, ctx) => {
        if (!route.adapter.moderations) throw new GatewayError("unsupported_capability", "This model's provider does not offer moderations.");
        return route.adapter.moderations(body, ctx);
      },
      clientHeaders,
    );
    ex.answered(result, (result.value as { model?: unknown }).model);
    return responder.json(ex, 200, result.value);
  }
  return new Hono<GatewayEnv>().post("/moderations", modelCallAdmission(s, "moderations", "openai"), moderations);
}
