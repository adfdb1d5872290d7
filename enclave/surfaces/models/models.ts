import { Hono, type Context } from "hono";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { authenticate } from "../../http/middleware/auth.js";
import { exchangeRecord } from "../../http/middleware/exchange-record.js";
import { nodeRequest } from "../../http/middleware/node-request.js";
import { clientMayUse } from "../../router.js";
import { anthropicModel, anthropicModelList, isAnthropicFlavoured, openaiModel, type ListedModel } from "./model-shapes.js";

/**
 * GET /v1/models and GET /v1/models/{id}: the configured models this client
 * may use, in OpenAI's shape, or Anthropic's when the request is the
 * Anthropic SDK's (it always sends anthropic-version; model-shapes.ts).
 * Authenticated (x-api-key too, on the Anthropic form), not rate limited,
 * no body. An id that is not listed, or that the token's allowlist does not
 * admit, is the same 404 model_not_found: a token learns nothing of models
 * it may not use. Prefix-routed ids ("openai/…") are not listed, so not
 * retrievable either: the gateway cannot vouch that the upstream has one.
 */
export function modelsApi(s: GatewayServices): Hono<GatewayEnv> {
  const { router, responder, now } = s;
  const visible = (c: Context<GatewayEnv>): ListedModel[] => {
    const created = Math.floor(now().getTime() / 1000);
    return router
      .list()
      .filter((m) => clientMayUse(c.var.client, m.id))
      .map((m) => ({ ...m, created }));
  };
  async function listModels(c: Context<GatewayEnv>): Promise<Response> {
    const models = visible(c);
    const body = isAnthropicFlavoured(c) ? anthropicModelList(models) : { object: "list", data: models.map(openaiModel) };
    return responder.json(c.var.exchange, 200, body);
  }
  async function retrieveModel(c: Context<GatewayEnv>): Promise<Response> {
    const id = c.req.param("id");
    const model = visible(c).find((m) => m.id === id);
    if (model === undefined) throw new GatewayError("model_not_found", "The model does not exist or is not served by this gateway.");
    return responder.json(c.var.exchange, 200, isAnthropicFlavoured(c) ? anthropicModel(model) : openaiModel(model));
  }
  const surface = (c: Context<GatewayEnv>) => (isAnthropicFlavoured(c) ? "anthropic" : "openai");
  // The error shape follows the flavour too: set after the record opens.
  const front = [
    nodeRequest(),
    exchangeRecord({ name: "models", surface: "openai", now }),
    async function modelsErrorShape(c: Context<GatewayEnv>, next: () => Promise<void>) {
      c.set("errorSurface", surface(c));
      await next();
    },
    authenticate(s.clients, surface),
  ] as const;
  return new Hono<GatewayEnv>().get("/models", ...front, listModels).get("/models/:id{.+}", ...front, retrieveModel);
}
