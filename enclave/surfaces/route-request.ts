import { GatewayError } from "../errors.js";
import type { Exchange } from "../http/exchange.js";
import { clientMayUse, type Route, type Router } from "../router.js";
import type { ClientConfig } from "../runtime-config.js";

/**
 * The routes a model call may take: the one the client's model name names
 * (which the client's allowlist must admit), then its configured fallbacks
 * that the client may also use. The exchange records the route as soon as
 * it is resolved, so that a refusal after it says which model it was for.
 */
export function routeRequest(router: Router, ex: Exchange, client: ClientConfig, model: unknown): Route[] {
  if (typeof model !== "string" || model.length === 0 || model.length > 256) {
    throw new GatewayError("invalid_request", "`model` must be a non-empty string.");
  }
  const route = router.resolve(model);
  if (!clientMayUse(client, route.exposed)) {
    throw new GatewayError("model_not_allowed", "This API key may not use this model.");
  }
  ex.routed(model, route);
  const fallbacks = route.fallbacks.map((name) => router.resolve(name)).filter((r) => clientMayUse(client, r.exposed));
  return [route, ...fallbacks];
}
