import type { MiddlewareHandler } from "hono";
import type { Surface } from "./error-body.js";
import type { GatewayEnv } from "./gateway-env.js";
import type { GatewayServices } from "./gateway-services.js";
import { authenticate } from "./middleware/auth.js";
import { concurrencySlot } from "./middleware/concurrency.js";
import { exchangeRecord } from "./middleware/exchange-record.js";
import { requireValidIdentity } from "./middleware/identity-validity.js";
import { jsonBody } from "./middleware/json-body.js";
import { addressRateLimit, clientRateLimit } from "./middleware/limits.js";
import { nodeRequest } from "./middleware/node-request.js";

/**
 * The front half every model call shares, cheapest refusal first, so that
 * nobody can make the enclave hold a body it would refuse: (the route
 * exists: Hono) → the exchange record → the receipt key is valid →
 * per-address limit → auth from the headers → per-token limit → concurrency
 * slot → the body, bounded in size, time and the shared in-flight byte
 * budget → content type, JSON. Anything refused before the body was read is
 * answered without reading it (with Connection: close unless it is small,
 * see middleware/receipts.ts bodyLeftUnread), and the exchange says
 * `bodyRead: false`. The handler after it finds c.var.client, c.var.body
 * and c.var.slot.
 */
export function modelCallAdmission(s: GatewayServices, name: string, surface: Surface, readBody?: MiddlewareHandler<GatewayEnv>): MiddlewareHandler<GatewayEnv> {
  const { config, now, rates } = s;
  return inOrder([
    nodeRequest(),
    exchangeRecord({ name, surface, readsBody: true, now }),
    requireValidIdentity(s.validity),
    addressRateLimit({ enabled: config.proxyProtocol, limits: config.limits, rates }),
    authenticate(s.clients, surface),
    clientRateLimit({ limits: config.limits, rates }),
    concurrencySlot({ concurrency: s.concurrency, bodyBytes: s.bodyBytes, metrics: s.deps.metrics }),
    // A surface whose body is not JSON (multipart audio) brings its own reader, bounded the same way.
    readBody ?? jsonBody(config.limits),
  ]);
}

/**
 * Middleware run one after another as one (like hono/combine's `every`,
 * without building a composition per request). A refusal thrown by one
 * unwinds through the ones before it (the slot's `finally` gives the slot
 * back) to the app's error handler, which signs it (middleware/receipts.ts).
 */
export function inOrder(handlers: readonly MiddlewareHandler<GatewayEnv>[]): MiddlewareHandler<GatewayEnv> {
  return async function admit(c, next) {
    const step = async (i: number): Promise<void> => {
      const handler = handlers[i];
      if (handler === undefined) return next();
      await handler(c, () => step(i + 1));
    };
    await step(0);
  };
}
