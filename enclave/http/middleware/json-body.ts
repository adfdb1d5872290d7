import type { MiddlewareHandler } from "hono";
import { GatewayError, isGatewayError } from "../../errors.js";
import type { Limits } from "../../runtime-config.js";
import { parseJsonObject, readBody } from "../body.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * The last step of admission: the body, bounded in size, time and the
 * shared in-flight byte budget (body.ts), then its content type and JSON.
 * The content type is checked after the read (an authenticated client, in
 * its slot), so that the receipt of that refusal covers the body that was
 * sent. Any refusal gives the slot back at once.
 */
export function jsonBody(limits: Pick<Limits, "maxBodyBytes" | "bodyTimeoutMs">): MiddlewareHandler<GatewayEnv> {
  return async function readJsonBody(c, next) {
    const { view, slot, exchange } = c.var;
    let body: Record<string, unknown>;
    try {
      const bytes = await readBody(view, { maxBytes: limits.maxBodyBytes, timeoutMs: limits.bodyTimeoutMs, reservation: slot.reservation }).catch((err: unknown) => {
        throw isGatewayError(err) ? err : new GatewayError("invalid_request", "Could not read the request body.", { cause: err });
      });
      exchange.bodyWasRead(bytes);
      const contentType = view.headers.get("content-type") ?? "";
      if (!/^application\/json\b/i.test(contentType)) {
        throw new GatewayError("unsupported_media_type", "Content-Type must be application/json.");
      }
      body = parseJsonObject(bytes);
    } catch (err) {
      slot.release();
      throw err;
    }
    c.set("body", body);
    await next();
  };
}
