import { describe, expect, it } from "vitest";
import { attestProof, attestProofHeader, parseAttestProof } from "../../../attestation/attest-proof.js";
import { hashToken } from "../../../enclave/auth.js";
import { AttestationBudget } from "../../../enclave/limits/attestation-budget.js";

const TOKEN = "egw-test-token-0123456789";
const nonce = (i: number) => new Uint8Array(Buffer.from(i.toString(16).padStart(64, "0"), "hex"));
const proofFor = (i: number, token = TOKEN) => parseAttestProof(attestProofHeader(token, nonce(i)))!;

function budget(overrides: Partial<ConstructorParameters<typeof AttestationBudget>[0]> = {}) {
  let t = 1_000_000;
  const b = new AttestationBudget({ now: () => t, perSecond: 10, reservedShare: 0.5, perAddressPerSecond: 2, clientTokenSha256: [hashToken(TOKEN)], ...overrides });
  return { b, advance: (ms: number) => (t += ms) };
}

function code(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe("fresh attestation budget", () => {
  it("the proof is HMAC-SHA256(SHA-256(token), 'egw-attest-v1' || nonce)", async () => {
    const { createHash, createHmac } = await import("node:crypto");
    const key = createHash("sha256").update(TOKEN).digest();
    const expected = createHmac("sha256", key).update("egw-attest-v1").update(nonce(1)).digest("hex");
    expect(attestProofHeader(TOKEN, nonce(1))).toBe(expected);
    expect(Buffer.from(attestProof(new Uint8Array(key), nonce(1))).toString("hex")).toBe(expected);
    expect(parseAttestProof("zz".repeat(32))).toBeUndefined();
    expect(parseAttestProof("ab".repeat(31))).toBeUndefined();
  });

  it("one address cannot take more than its burst (twice its per-second rate)", () => {
    const { b, advance } = budget();
    const results = Array.from({ length: 6 }, (_, i) => code(() => b.admit(nonce(i), { address: "203.0.113.7", proof: undefined })));
    expect(results).toEqual([undefined, undefined, undefined, undefined, "attestation_rate_limited", "attestation_rate_limited"]);
    // Another address still has its own bucket (and the open share has room).
    expect(code(() => b.admit(nonce(10), { address: "198.51.100.9", proof: undefined }))).toBeUndefined();
    advance(500);
    expect(code(() => b.admit(nonce(11), { address: "203.0.113.7", proof: undefined }))).toBeUndefined();
  });

  it("an unproven flood from many addresses empties only the open share: a proven request still gets a document", () => {
    const { b } = budget();
    let admitted = 0;
    for (let i = 0; i < 200; i++) if (code(() => b.admit(nonce(i), { address: `10.0.${i >> 8}.${i & 255}`, proof: undefined })) === undefined) admitted++;
    expect(admitted).toBe(5); // the unreserved half of 10/s
    for (let i = 0; i < 5; i++) expect(code(() => b.admit(nonce(1000 + i), { address: "10.9.9.9", proof: proofFor(1000 + i) }))).toBeUndefined();
    expect(code(() => b.admit(nonce(2000), { address: "10.9.9.9", proof: proofFor(2000) }))).toBe("attestation_rate_limited");
  });

  it("a wrong proof, a proof for another nonce and a replayed proof count as unproven", () => {
    const { b } = budget({ perAddressPerSecond: 0 }); // unproven requests get nothing at all here
    expect(code(() => b.admit(nonce(1), { address: "a", proof: proofFor(1, "another-token") }))).toBe("attestation_rate_limited");
    expect(code(() => b.admit(nonce(1), { address: "a", proof: proofFor(2) }))).toBe("attestation_rate_limited");
    expect(code(() => b.admit(nonce(1), { address: "a", proof: undefined }))).toBe("attestation_rate_limited");
    expect(b.admit(nonce(1), { address: "a", proof: proofFor(1) })).toBe("proven");
    expect(code(() => b.admit(nonce(1), { address: "a", proof: proofFor(1) }))).toBe("attestation_rate_limited");
  });

  it("a proven request falls back to the open share when the reserved one is empty; Retry-After is given", () => {
    const { b } = budget({ perSecond: 2, reservedShare: 0.5 });
    expect(b.admit(nonce(1), { address: "a", proof: proofFor(1) })).toBe("proven");
    expect(b.admit(nonce(2), { address: "a", proof: proofFor(2) })).toBe("proven"); // from the open share
    let retryAfter: number | undefined;
    try {
      b.admit(nonce(3), { address: "b", proof: undefined });
    } catch (err) {
      retryAfter = (err as { retryAfter?: number }).retryAfter;
    }
    expect(retryAfter).toBe(1);
  });

  it("share 1 keeps every fresh document for proven requests; bad options are refused", () => {
    const { b } = budget({ reservedShare: 1 });
    expect(code(() => b.admit(nonce(1), { address: "a", proof: undefined }))).toBe("attestation_rate_limited");
    expect(b.admit(nonce(2), { address: "a", proof: proofFor(2) })).toBe("proven");
    expect(() => budget({ reservedShare: 1.5 })).toThrow(/reservedShare/);
    expect(() => budget({ clientTokenSha256: ["not-hex"] })).toThrow(/hex/);
  });
});
