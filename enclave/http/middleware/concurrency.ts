import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.js";
import type { ByteBudget } from "../../limits/byte-budget.js";
import type { Semaphore } from "../../limits/token-bucket.js";
import type { GatewayMetrics } from "../../observability/metrics.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * Takes a model call's concurrency slot (c.var.slot, gateway-env.ts), and
 * with it its share of the in-flight body budget: after the rate limits,
 * 429 overloaded when none is free. Given back when the request ends,
 * unless the handler handed it to a stream (signed-stream.ts), which gives
 * it back when the stream ends.
 */
export function concurrencySlot(options: { concurrency: Semaphore; bodyBytes: ByteBudget; metrics: GatewayMetrics }): MiddlewareHandler<GatewayEnv> {
  const { concurrency, bodyBytes, metrics } = options;
  return async function holdSlot(c, next) {
    const releaseSlot = concurrency.tryAcquire();
    if (!releaseSlot) throw new GatewayError("overloaded", "The gateway is at its concurrency limit; retry shortly.", { retryAfter: 1 });
    metrics.inFlight.inc();
    const reservation = bodyBytes.reservation();
    let released = false;
    let handedOff = false;
    const release = () => {
      if (released) return;
      released = true;
      reservation.release();
      metrics.inFlight.dec();
      releaseSlot();
    };
    c.set("slot", {
      reservation,
      release,
      handOff: () => {
        handedOff = true;
        return release;
      },
    });
    try {
      await next();
    } finally {
      if (!handedOff) release();
    }
  };
}
