import { Hono, type MiddlewareHandler } from "hono";
import { isGatewayError } from "../../../../enclave/errors.js";
import { inOrder } from "../../../../enclave/http/admission.js";
import type { GatewayEnv } from "../../../../enclave/http/gateway-env.js";

/**
 * A bare app around some middleware, for the middleware's own tests: the
 * error handler answers the stable code (and retry-after), and the final
 * handler answers what the middleware left in c.var.
 */
export function appAround(middleware: MiddlewareHandler<GatewayEnv>[], handler?: (c: import("hono").Context<GatewayEnv>) => Response | Promise<Response>): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError((err, c) => {
    if (!isGatewayError(err)) return c.json({ code: "not_a_gateway_error", message: err.message }, 500);
    return c.json({ code: err.code, ...(err.retryAfter !== undefined && { retryAfter: err.retryAfter }) }, err.status as 400);
  });
  app.post("/x", inOrder(middleware), handler ?? ((c) => c.json({ ok: true })));
  app.get("/x", inOrder(middleware), handler ?? ((c) => c.json({ ok: true })));
  return app;
}
