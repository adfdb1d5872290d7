import { Hono, type Context } from "hono";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { GatewayServices } from "../../http/gateway-services.js";

/**
 * GET /healthz and GET /metrics, outside /v1: no receipts, no
 * authentication (the host's health checks and scrapers reach them). The
 * health check fails once the receipt key has expired, so the replica is
 * replaced (http/middleware/identity-validity.ts).
 */
export function healthApi(s: GatewayServices): Hono<GatewayEnv> {
  const { validity } = s;
  const { metrics } = s.deps;
  function healthz(c: Context<GatewayEnv>): Response {
    return validity.expired() ? c.json({ status: "identity_expired" }, 503) : c.json({ status: "ok" });
  }
  async function prometheusMetrics(): Promise<Response> {
    const text = await metrics.registry.metrics();
    return new Response(text, { headers: { "content-type": metrics.registry.contentType } });
  }
  return new Hono<GatewayEnv>().get("/healthz", healthz).get("/metrics", prometheusMetrics);
}
