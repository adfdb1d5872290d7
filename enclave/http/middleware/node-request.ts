import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../gateway-env.js";
import { requestView } from "../request-view.js";

/**
 * Puts the request view (request-view.ts) in `c.var.view`: headers, body and
 * the client-gone signal read from Node's IncomingMessage on the server,
 * from the WHATWG Request under `app.request()`. Everything after this reads
 * the request through the view only.
 */
export function nodeRequest(): MiddlewareHandler<GatewayEnv> {
  return async function viewRequest(c, next) {
    c.set("view", requestView(c));
    await next();
  };
}
