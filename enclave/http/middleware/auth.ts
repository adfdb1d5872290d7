import type { Context, MiddlewareHandler } from "hono";
import type { ClientDirectory } from "../../auth.js";
import type { Surface } from "../error-body.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * Authenticates the client from the headers alone (enclave/auth.ts: a
 * token's SHA-256 looked up, Bearer everywhere, x-api-key on the Anthropic
 * surface, x-goog-api-key or `?key=` on the Gemini surface) and puts it in
 * `c.var.client`. Runs before any body byte is read.
 */
export function authenticate(clients: ClientDirectory, surface: Surface | ((c: Context<GatewayEnv>) => Surface)): MiddlewareHandler<GatewayEnv> {
  return async function authenticateClient(c, next) {
    const which = typeof surface === "function" ? surface(c) : surface;
    // Google's `?key=`: read here, never logged (the exchange keeps the path without its query).
    const queryKey = which === "gemini" ? (c.req.query("key") ?? null) : null;
    c.set("client", clients.authenticate(c.var.view.headers, which, queryKey));
    await next();
  };
}
