import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * The attestation-request proof (docs/PROTOCOL.md §2, "Budget"): a client
 * asking for a fresh document may show that it belongs to a configured
 * client, so that its request may use the share of the fresh-document budget
 * kept for verified clients, without revealing its token to a gateway it has
 * not verified yet:
 *
 *   x-egw-attest-proof: hex( HMAC-SHA256( key = SHA-256(token) (32 raw bytes),
 *                                         message = "egw-attest-v1" || nonce ) )
 *
 * Why this reveals nothing usable:
 *  - the token itself is never sent before the enclave is verified; the
 *    gateway authenticates API calls by SHA-256(token) preimage, and the
 *    proof is keyed by the hash, not the token, so whoever sees proofs (a
 *    MITM posing as the gateway, or the host, which already holds every
 *    tokenSha256 in the operations config) learns nothing that opens the API;
 *  - the proof is bound to the nonce, so it cannot be moved to another
 *    request; the enclave also accepts each proven nonce once
 *    (enclave/limits/attestation-budget.ts), so a captured proof cannot be
 *    replayed to drain the reserved share;
 *  - what a proof does give an observer is an offline test of token
 *    guesses (HMAC under SHA-256 of the guess), the same test the
 *    tokenSha256 in the config already gives the host: tokens must be
 *    random and long (egw dev makes 16 random bytes), not passwords.
 * The host, who knows every tokenSha256, can forge proofs: it can deny
 * service anyway (it carries every byte), so this share protects verified
 * clients from other clients, not from the operator.
 */
export const ATTEST_PROOF_HEADER = "x-egw-attest-proof";
export const ATTEST_PROOF_CONTEXT = "egw-attest-v1";
export const ATTEST_PROOF_BYTES = 32;

const CONTEXT_BYTES = new TextEncoder().encode(ATTEST_PROOF_CONTEXT);

/** The proof for a nonce, from the 32-byte SHA-256 of the client's token. */
export function attestProof(tokenSha256: Uint8Array, nonce: Uint8Array): Uint8Array {
  if (tokenSha256.length !== 32) throw new TypeError(`"tokenSha256" expected Uint8Array of length 32, got length=${tokenSha256.length}`);
  return new Uint8Array(createHmac("sha256", tokenSha256).update(CONTEXT_BYTES).update(nonce).digest());
}

/** The header value a client sends, from its token (hashed here; the token goes nowhere). */
export function attestProofHeader(token: string, nonce: Uint8Array): string {
  const key = new Uint8Array(createHash("sha256").update(token, "utf8").digest());
  return Buffer.from(attestProof(key, nonce)).toString("hex");
}

/** Parses a header value: exactly 64 hex digits, else undefined (treated as no proof). */
export function parseAttestProof(value: string | null | undefined): Uint8Array | undefined {
  if (typeof value !== "string" || !/^[0-9a-fA-F]{64}$/.test(value)) return undefined;
  return new Uint8Array(Buffer.from(value, "hex"));
}

/** Constant-time comparison of a presented proof with the expected one. */
export function proofMatches(expected: Uint8Array, presented: Uint8Array): boolean {
  return expected.length === presented.length && timingSafeEqual(expected, presented);
}

/**
 * The client token a request carries, as the gateway reads it
 * (enclave/auth.ts): `Authorization: Bearer <token>`, else `x-api-key`.
 * Only to compute a proof; undefined when there is none.
 */
export function requestToken(headers: Record<string, string>): string | undefined {
  const bearer = /^Bearer[ ]+([^\s]{1,512})\s*$/i.exec(headers.authorization ?? "");
  if (bearer) return bearer[1];
  const key = headers["x-api-key"]?.trim();
  return key !== undefined && key.length > 0 && key.length <= 512 ? key : undefined;
}
