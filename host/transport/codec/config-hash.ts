import { createHash } from "node:crypto";

/**
 * The deployment hash attested in user_data as `config_sha256`
 * (docs/PROTOCOL.md, channel binding v3):
 *   SHA-256( SHA-256(trust policy) ‖ SHA-256(operations) [‖ SHA-256(sealed-secrets file)] )
 * over the exact bytes received. It names one exact deployment, for an
 * auditor or a client that wants to pin one; it changes with every token or
 * limit, so clients normally constrain the trust policy (`policy_sha256`
 * and what it says) instead.
 *
 * A module of its own, importing nothing but node:crypto, so the release and
 * deployment tools (egw manifest create, the CDK app) compute exactly what
 * the enclave attests without loading the gateway.
 */
export function attestedConfigHash(trustPolicy: Uint8Array, operations: Uint8Array, sealedFile?: Uint8Array): Uint8Array {
  const h = createHash("sha256").update(createHash("sha256").update(trustPolicy).digest()).update(createHash("sha256").update(operations).digest());
  if (sealedFile) h.update(createHash("sha256").update(sealedFile).digest());
  return new Uint8Array(h.digest());
}

/** SHA-256 of the trust policy's exact bytes: `policy_sha256` in channel binding v3. */
export function attestedPolicyHash(trustPolicy: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(trustPolicy).digest());
}
