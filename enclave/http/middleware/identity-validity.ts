import type { MiddlewareHandler } from "hono";
import { GatewayError } from "../../errors.js";
import type { EnclaveIdentity } from "../../identity.js";
import type { GatewayEnv } from "../gateway-env.js";

/**
 * A sealed identity's signing key has a window (enclave/secrets/identity-blob.ts).
 * Past it, receipts would claim times no verifier accepts: model calls are
 * refused and the health check fails (surfaces/health/), so the replica is
 * replaced by one booted from the rotated identity. An ephemeral identity
 * has no window and never expires.
 */
export interface IdentityValidity {
  expired(): boolean;
}

export function receiptKeyValidity(identity: EnclaveIdentity, now: () => Date): IdentityValidity {
  const notAfter = identity.receipt.window?.notAfter;
  return { expired: () => notAfter !== undefined && now().getTime() >= notAfter };
}

/** Refuses the request (503 identity_expired, signed with the key while it is still ours) once the key's window has passed. */
export function requireValidIdentity(validity: IdentityValidity): MiddlewareHandler<GatewayEnv> {
  return async function validIdentity(_c, next) {
    if (validity.expired()) throw new GatewayError("identity_expired", "This replica's receipt key has expired; it is being replaced.");
    await next();
  };
}
