import { attestProof, proofMatches } from "../../attestation/attest-proof.js";
import { GatewayError } from "../errors.js";
import { TokenBuckets } from "./token-bucket.js";

/**
 * Who may have a fresh attestation document now (docs/PROTOCOL.md §2,
 * "Budget"). Each one costs an NSM call, a shared and slow device, so the
 * global rate (limits.attestationPerSecond) is split in two shares:
 *
 *  - reserved (attestationReservedShare of it): only for requests that carry
 *    a valid x-egw-attest-proof for their nonce, i.e. come from a configured
 *    client (attestation/attest-proof.ts says why the proof reveals nothing
 *    usable). A proven request takes from the reserved share first, then
 *    from the unreserved one; it is not held to the per-address bucket,
 *    because one verifying client opens several attested connections at once.
 *  - unreserved (the rest): for everyone, and each client address also has
 *    its own small bucket (attestationPerAddressPerSecond, burst twice that),
 *    so one address cannot take the whole unreserved share.
 *
 * So an unauthenticated flood, from any number of addresses, can empty only
 * the unreserved share: a proven request still gets a document. A wrong,
 * malformed or replayed proof counts as no proof. Each proven nonce is
 * accepted once (for NONCE_MEMORY_MS), so a proof seen by a MITM cannot be
 * replayed to drain the reserved share. The address is the untrusted host's
 * claim (PROXY v2) or the socket's peer; the host can deny service anyway.
 */
export interface AttestationBudgetOptions {
  /** Milliseconds, injected. */
  now: () => number;
  /** limits.attestationPerSecond: fresh documents per second, all requesters. */
  perSecond: number;
  /** limits.attestationReservedShare: 0..1 of perSecond kept for proven requests. */
  reservedShare: number;
  /** limits.attestationPerAddressPerSecond, for unproven requests. */
  perAddressPerSecond: number;
  /** The configured clients' tokenSha256 (hex): the proof keys. */
  clientTokenSha256: readonly string[];
}

export interface FreshRequester {
  /** The client address (PROXY v2 or socket peer); null when unknown: all unknowns share one bucket. */
  address: string | null;
  /** The parsed x-egw-attest-proof, if any. */
  proof: Uint8Array | undefined;
}

/** At most this many clients' keys are tried per proof: bounds the work a bogus proof costs. */
export const MAX_PROOF_CLIENTS = 1024;
const NONCE_MEMORY_MS = 120_000;
const MAX_REMEMBERED_NONCES = 100_000;
const MAX_ADDRESSES = 10_000;

export class AttestationBudget {
  private readonly shares: TokenBuckets;
  private readonly addresses: TokenBuckets;
  private readonly keys: Uint8Array[];
  private readonly reservedRate: number;
  private readonly openRate: number;
  /** Proven nonces (hex) → when they were used; insertion order is time order. */
  private readonly usedNonces = new Map<string, number>();

  constructor(private readonly options: AttestationBudgetOptions) {
    const { perSecond, reservedShare, perAddressPerSecond } = options;
    if (!(perSecond >= 0) || !Number.isFinite(perSecond)) throw new TypeError(`"perSecond" expected a non-negative number, got ${perSecond}`);
    if (!(reservedShare >= 0 && reservedShare <= 1)) throw new TypeError(`"reservedShare" expected a number in 0..1, got ${reservedShare}`);
    if (!(perAddressPerSecond >= 0) || !Number.isFinite(perAddressPerSecond)) {
      throw new TypeError(`"perAddressPerSecond" expected a non-negative number, got ${perAddressPerSecond}`);
    }
    this.shares = new TokenBuckets(options.now, 4);
    this.addresses = new TokenBuckets(options.now, MAX_ADDRESSES);
    this.reservedRate = perSecond * reservedShare;
    this.openRate = perSecond - this.reservedRate;
    this.keys = options.clientTokenSha256.slice(0, MAX_PROOF_CLIENTS).map((hex) => {
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new TypeError("clientTokenSha256 expected 64 lowercase hex digits");
      return new Uint8Array(Buffer.from(hex, "hex"));
    });
  }

  /** Takes one fresh document from the budget, or throws 429 attestation_rate_limited. */
  admit(nonce: Uint8Array, requester: FreshRequester): "proven" | "unproven" {
    const nonceHex = Buffer.from(nonce).toString("hex");
    if (requester.proof !== undefined && this.proven(nonce, nonceHex, requester.proof)) {
      const reservedWait = this.take("reserved", this.reservedRate);
      const wait = reservedWait === 0 ? 0 : this.take("open", this.openRate);
      if (wait > 0) throw limited(Math.min(reservedWait, wait));
      this.remember(nonceHex);
      return "proven";
    }
    const perAddress = this.options.perAddressPerSecond;
    const addressWait = this.addresses.take(`addr:${requester.address ?? "(unknown)"}`, capacity(perAddress * 2), perAddress);
    if (addressWait > 0) throw limited(addressWait);
    const wait = this.take("open", this.openRate);
    if (wait > 0) throw limited(wait);
    return "unproven";
  }

  private take(share: "reserved" | "open", rate: number): number {
    return this.shares.take(share, capacity(rate), rate);
  }

  /** Checks the proof against every configured client (bounded), in constant time per key; a reused nonce is no proof. */
  private proven(nonce: Uint8Array, nonceHex: string, proof: Uint8Array): boolean {
    this.forget();
    if (this.usedNonces.has(nonceHex)) return false;
    let match = false;
    for (const key of this.keys) if (proofMatches(attestProof(key, nonce), proof)) match = true;
    return match;
  }

  private remember(nonceHex: string): void {
    this.usedNonces.set(nonceHex, this.options.now());
    while (this.usedNonces.size > MAX_REMEMBERED_NONCES) {
      const oldest = this.usedNonces.keys().next().value;
      if (oldest === undefined) break;
      this.usedNonces.delete(oldest);
    }
  }

  private forget(): void {
    const cutoff = this.options.now() - NONCE_MEMORY_MS;
    for (const [nonce, at] of this.usedNonces) {
      if (at > cutoff) break;
      this.usedNonces.delete(nonce);
    }
  }
}

/** A bucket that can hold one token when its rate is below one per second; none when the rate is 0. */
function capacity(rate: number): number {
  return rate > 0 ? Math.max(1, rate) : 0;
}

function limited(retryAfter: number): GatewayError {
  return new GatewayError("attestation_rate_limited", "Too many attestation requests; poll the cached document or retry later.", { retryAfter });
}
