import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.js";
import type { TokenBuckets } from "../../limits/token-bucket.js";
import type { Limits } from "../../runtime-config.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * The two rate limits of admission, each a token bucket refilled per
 * minute's allowance and answered 429 rate_limited with retry-after.
 *
 * Per client address first, before authentication, when the relay reports
 * addresses (PROXY v2): it also slows down token guessing from one address.
 * The address is the untrusted host's claim, so nothing else depends on it.
 */
export function addressRateLimit(options: { enabled: boolean; limits: Pick<Limits, "ipRateLimitPerMinute">; rates: TokenBuckets }): MiddlewareHandler<GatewayEnv> {
  const { enabled, limits, rates } = options;
  return async function limitAddress(c, next) {
    const address = enabled ? clientAddressOf(c.env) : null;
    if (address !== null) {
      const perIp = limits.ipRateLimitPerMinute;
      const wait = rates.take(`ip:${address}`, Math.max(1, perIp), perIp / 60);
      if (wait > 0) throw new GatewayError("rate_limited", "Rate limit reached for this client address.", { retryAfter: wait });
    }
    await next();
  };
}

/** Per API key, after authentication: the client's own limit, else the gateway's. */
export function clientRateLimit(options: { limits: Pick<Limits, "rateLimitPerMinute">; rates: TokenBuckets }): MiddlewareHandler<GatewayEnv> {
  const { limits, rates } = options;
  return async function limitClient(c, next) {
    const client = c.var.client;
    const perMinute = client.rateLimitPerMinute ?? limits.rateLimitPerMinute;
    const wait = rates.take(`client:${client.name}`, Math.max(1, perMinute), perMinute / 60);
    if (wait > 0) throw new GatewayError("rate_limited", "Rate limit reached for this API key.", { retryAfter: wait });
    await next();
  };
}

/** The address the host relay reported for this connection (enclave/server.ts), if it reports any. */
export function clientAddressOf(env: { relayAddress?: string | null } | undefined): string | null {
  const address = env?.relayAddress;
  return typeof address === "string" ? address : null;
}
