import type { Attester } from "../attestation/attester.js";
import { encodeBinding } from "../attestation/binding.js";
import { GatewayError } from "./errors.js";
import type { EnclaveIdentity } from "./identity.js";
import { AttestationBudget, type FreshRequester } from "./limits/attestation-budget.js";

/**
 * Issues the enclave's attestation documents. Every document binds:
 *  - public_key = the receipt-signing key (SPKI DER, P-256);
 *  - user_data  = { v: 3, tls_spki_sha256, config_sha256, policy_sha256 } (attestation/binding.ts),
 *                 with `receipt_keys` for a sealed identity;
 *  - nonce      = the client's nonce, for fresh documents.
 * Fresh documents are budgeted (the NSM is a shared, slow device): per
 * address, with a share kept for requests that prove they come from a
 * configured client (limits/attestation-budget.ts). A document without a
 * nonce is cached and refreshed for cheap polling, and is always free.
 */
export const MAX_NONCE_BYTES = 64;
export const MIN_NONCE_BYTES = 8;

export interface AttestationServiceOptions {
  attester: Attester;
  identity: EnclaveIdentity;
  configSha256: Uint8Array;
  /** SHA-256 of the trust policy's exact bytes. */
  policySha256: Uint8Array;
  now: () => Date;
  /** Fresh documents per second, across all clients. */
  perSecond: number;
  /** Share of perSecond only proven requests may use (0..1). */
  reservedShare: number;
  /** Fresh documents per second per client address, for unproven requests. */
  perAddressPerSecond: number;
  /** The configured clients' tokenSha256 (hex), against which proofs are checked. */
  clientTokenSha256: readonly string[];
  /** How long the nonce-less document is reused. */
  cacheTtlMs?: number;
}

export class AttestationService {
  private readonly budget: AttestationBudget;
  private readonly userData: Uint8Array;
  private cached: { doc: Uint8Array; at: number } | undefined;
  private refreshing: Promise<Uint8Array> | undefined;

  constructor(private readonly options: AttestationServiceOptions) {
    this.budget = new AttestationBudget({
      now: () => options.now().getTime(),
      perSecond: options.perSecond,
      reservedShare: options.reservedShare,
      perAddressPerSecond: options.perAddressPerSecond,
      clientTokenSha256: options.clientTokenSha256,
    });
    const keySet = options.identity.receipt.keySet;
    this.userData = encodeBinding({
      tlsSpkiSha256: options.identity.tls.spkiSha256,
      configSha256: options.configSha256,
      policySha256: options.policySha256,
      // A sealed identity attests its receipt keys with their windows (binding v2).
      ...(keySet && { receiptKeys: keySet }),
    });
  }

  get bindingUserData(): Uint8Array {
    return this.userData;
  }

  /** A document with the client's nonce; throws attestation_rate_limited (429) past the requester's budget. */
  async fresh(nonce: Uint8Array, requester: FreshRequester): Promise<Uint8Array> {
    if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
      throw new GatewayError("invalid_request", `nonce must be ${MIN_NONCE_BYTES}..${MAX_NONCE_BYTES} bytes of hex`);
    }
    this.budget.admit(nonce, requester);
    return this.issue(nonce);
  }

  /** The nonce-less document, reissued when older than the TTL. Single-flight. */
  async current(): Promise<Uint8Array> {
    const ttl = this.options.cacheTtlMs ?? 60_000;
    const now = this.options.now().getTime();
    if (this.cached && now - this.cached.at < ttl) return this.cached.doc;
    if (!this.refreshing) {
      this.refreshing = this.issue(undefined)
        .then((doc) => {
          this.cached = { doc, at: this.options.now().getTime() };
          return doc;
        })
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.refreshing;
  }

  private async issue(nonce: Uint8Array | undefined): Promise<Uint8Array> {
    return this.options.attester.attest({
      publicKey: this.options.identity.receipt.publicSpkiDer,
      userData: this.userData,
      ...(nonce && { nonce }),
    });
  }
}
