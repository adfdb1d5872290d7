import { Hono, type Context } from "hono";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { authenticate } from "../../http/middleware/auth.js";
import { exchangeRecord } from "../../http/middleware/exchange-record.js";
import { nodeRequest } from "../../http/middleware/node-request.js";
import { clientMayUse } from "../../router.js";

/**
 * GET /v1/models: the configured models this client may use. Authenticated
 * (the Anthropic SDK's x-api-key too, when it says anthropic-version), not
 * rate limited, no body.
 */
export function modelsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { router, responder, now } = s;
  async function listModels(c: Context<GatewayEnv>): Promise<Response> {
    const { client, exchange } = c.var;
    const created = Math.floor(now().getTime() / 1000);
    const data = router
      .list()
      .filter((m) => clientMayUse(client, m.id))
      .map((m) => ({ id: m.id, object: "model", created, owned_by: m.provider, ...(m.description && { description: m.description }) }));
    return responder.json(exchange, 200, { object: "list", data });
  }
  return new Hono<GatewayEnv>().get(
    "/models",
    nodeRequest(),
    exchangeRecord({ name: "models", surface: "openai", now }),
    authenticate(s.clients, function modelsAuthSurface(c) {
      return c.req.header("anthropic-version") ? "anthropic" : "openai";
    }),
    listModels,
  );
}
