import type { Context, MiddlewareHandler } from "hono";
import type { Surface } from "../error-body.js";
import { Exchange } from "../exchange.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * Opens the request's record (exchange.ts) as it arrives, before any check,
 * so that every answer, refusals included, has a receipt and one metrics
 * line. `surface` names the API's error shape; `readsBody` marks a model
 * call, whose refusals before the body may have to close the connection
 * (middleware/receipts.ts).
 */
export interface ExchangeRecordOptions {
  /** The surface name in receipts, metrics and logs. */
  name: string;
  surface: Surface;
  readsBody?: boolean;
  now: () => Date;
}

export function exchangeRecord(options: ExchangeRecordOptions): MiddlewareHandler<GatewayEnv> {
  const { name, surface, now } = options;
  const readsBody = options.readsBody ?? false;
  return async function openExchange(c, next) {
    c.set("exchange", newExchange(c, name, now));
    c.set("errorSurface", surface);
    c.set("readsBody", readsBody);
    await next();
  };
}

export function newExchange(c: Context, name: string, now: () => Date): Exchange {
  return new Exchange(name, c.req.method.toUpperCase(), requestPathname(c), now().getTime());
}

/** The request path as the URL parser normalised it, without the query (what the client's URL parser sent). */
function requestPathname(c: Context): string {
  try {
    return new URL(c.req.url).pathname;
  } catch {
    return "/";
  }
}
