import type { Context } from "hono";
import { GatewayError } from "../../errors.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";
import { clientMayUse, type Router } from "../../router.js";
import { modelOf } from "./model-method-path.js";

/**
 * `GET /v1beta/models` and `GET /v1beta/models/{model}` in Google's Model
 * shape: the configured models this client may use, named `models/<name>`
 * (the name a client puts in the path), each with the methods the gateway
 * serves for it (embeddings only where the provider has them). One page:
 * no nextPageToken. Nothing is asked upstream.
 */
function modelEntry(router: Router, id: string, description: string | undefined): Record<string, unknown> {
  const adapter = router.resolve(id).adapter;
  const methods = ["generateContent", "streamGenerateContent", "countTokens"];
  if (adapter.nativeGemini || adapter.embeddings) methods.push("embedContent", "batchEmbedContents");
  return { name: `models/${id}`, version: "gateway", displayName: id, ...(description && { description }), supportedGenerationMethods: methods };
}

export function listModelsHandler(s: GatewayServices) {
  const { router, responder } = s;
  return function listModels(c: Context<GatewayEnv>): Response {
    const { client, exchange } = c.var;
    const models = router
      .list()
      .filter((m) => clientMayUse(client, m.id))
      .map((m) => modelEntry(router, m.id, m.description));
    return responder.json(exchange, 200, { models });
  };
}

export function getModelHandler(s: GatewayServices) {
  const { router, responder } = s;
  return function getModel(c: Context<GatewayEnv>): Response {
    const { client, exchange } = c.var;
    const id = modelOf(c.req.path);
    // The router decides what the name means (aliases, prefix routing); a name this client may not use is not shown.
    const route = router.resolve(id);
    if (!clientMayUse(client, route.exposed)) throw new GatewayError("model_not_found", "The model does not exist or is not served by this gateway.");
    const configured = router.list().find((m) => m.id === id);
    return responder.json(exchange, 200, modelEntry(router, id, configured?.description));
  };
}
