import { describe, expect, it } from "vitest";
import { ChainCache } from "../../attestation/chain.js";
import { createDevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { buildTestChain, testDocument } from "../helpers/test-chain.js";
import { loadNitroFixtures } from "../helpers/fixtures.js";

const fixtures = loadNitroFixtures();
const hexOf = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));

describe("real Nitro documents", () => {
  it("has all six fixtures", () => {
    expect(fixtures).toHaveLength(6);
    expect(fixtures.filter((f) => f.debug).map((f) => f.name)).toEqual(["evervault-2022-10-12-debug-nonDER-pubkey", "evervault-2023-09-18-debug"]);
  });

  for (const fx of fixtures) {
    describe(fx.name, () => {
      const at = new Date(fx.timestampMs);

      it(`is accepted at its own timestamp${fx.debug ? " with debug allowed" : " against its stated PCRs"}`, async () => {
        const expectedPcrs = fx.debug ? { ...fx.pcrs, ...fx.expectedBySource } : fx.pcrs;
        if (!fx.debug && fx.expectedBySource) {
          // The source's own assertion agrees with the decoded values we pin.
          for (const [i, v] of Object.entries(fx.expectedBySource)) expect(fx.pcrs[i]).toBe(v);
        }
        const result = await verifyAttestation(fx.bytes, { currentDate: at, expectedPcrs, allowDebug: fx.debug });
        expect(result.moduleId).toBe(fx.meta.decoded.module_id);
        expect(result.timestamp.getTime()).toBe(fx.timestampMs);
        expect(result.debug).toBe(fx.debug);
        expect(result.document.pcrs.size).toBe(fx.meta.decoded.pcr_count);
        expect(hexOf(result.document.publicKey)).toBe(fx.meta.decoded.public_key);
        expect(hexOf(result.document.userData)).toBe(fx.meta.decoded.user_data);
        expect(hexOf(result.document.nonce)).toBe(fx.meta.decoded.nonce);
        expect(result.root).toEqual({
          name: "aws-nitro-root-g1",
          sha256: "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b",
          production: true,
        });
        expect(result.chain.map((c) => c.role)).toEqual(["leaf", "intermediate", "intermediate", "intermediate", "root"]);
        expect(result.chain[0]!.subject).toContain(fx.meta.decoded.module_id);
        expect(result.steps.filter((s) => s.status === "passed").map((s) => s.step)).toEqual(
          expect.arrayContaining(["decode", "cose-header", "fields", "chain", "signature", "debug-mode", "pcrs", "freshness"]),
        );
      });

      if (fx.debug) {
        it("is rejected as debug mode unless debug is allowed", async () => {
          await expect(verifyAttestation(fx.bytes, { currentDate: at, expectedPcrs: "any" })).rejects.toMatchObject({
            code: "ERR_DEBUG_MODE",
          });
        });
      }

      it("is rejected just after its chain expires", async () => {
        const justAfter = new Date(fx.chainWindow[1].getTime() + 1000);
        await expect(verifyAttestation(fx.bytes, { currentDate: justAfter, expectedPcrs: "any", allowDebug: true, maxAgeMs: Infinity })).rejects.toMatchObject({
          code: "ERR_CERT_EXPIRED",
        });
      });

      it("is rejected just before its chain becomes valid", async () => {
        const justBefore = new Date(fx.chainWindow[0].getTime() - 1000);
        await expect(verifyAttestation(fx.bytes, { currentDate: justBefore, expectedPcrs: "any", allowDebug: true, clockSkewMs: Infinity })).rejects.toMatchObject({
          code: "ERR_CERT_NOT_YET_VALID",
        });
      });

      it("checks nonce, public_key and user_data when the policy names them", async () => {
        const base = { currentDate: at, expectedPcrs: "any" as const, allowDebug: true };
        const d = fx.meta.decoded;
        const named = {
          ...(d.nonce !== null && { nonce: d.nonce }),
          ...(d.public_key !== null && { publicKey: d.public_key }),
          ...(d.user_data !== null && { userData: d.user_data }),
        };
        const ok = await verifyAttestation(fx.bytes, { ...base, ...named });
        for (const step of ["nonce", "public-key", "user-data"] as const) {
          const key = { nonce: "nonce", "public-key": "publicKey", "user-data": "userData" }[step];
          expect(ok.steps.find((s) => s.step === step)?.status).toBe(key in named ? "passed" : "not-requested");
        }
        // A value the document does not carry is a mismatch, never a skip.
        await expect(verifyAttestation(fx.bytes, { ...base, nonce: "00".repeat(32) })).rejects.toMatchObject({
          code: "ERR_NONCE_MISMATCH",
        });
        await expect(verifyAttestation(fx.bytes, { ...base, userData: "ab" })).rejects.toMatchObject({
          code: "ERR_USER_DATA_MISMATCH",
        });
        await expect(verifyAttestation(fx.bytes, { ...base, publicKey: "cd" })).rejects.toMatchObject({
          code: "ERR_PUBLIC_KEY_MISMATCH",
        });
      });
    });
  }
});

describe("encodings real hardware and peers emit", () => {
  const fx = fixtures.find((f) => f.name.startsWith("base-"))!;
  const at = new Date(fx.timestampMs);

  it("accepts the indefinite-length payload map and null optional fields", async () => {
    const payloadFirstByte = fx.meta.decoded.payload_first_byte;
    expect(payloadFirstByte).toBe("0xbf");
    const result = await verifyAttestation(fx.bytes, { currentDate: at, expectedPcrs: fx.pcrs });
    expect(result.document.publicKey).toBeNull();
    expect(result.document.nonce).toBeNull();
  });

  it("accepts the COSE_Sign1 tag 18 (RFC 9052) as well as the untagged form", async () => {
    const tagged = new Uint8Array([0xd2, ...fx.bytes]);
    const result = await verifyAttestation(tagged, { currentDate: at, expectedPcrs: fx.pcrs });
    expect(result.tagged).toBe(true);
  });

  it("rejects any other tag on the envelope", async () => {
    const tagged = new Uint8Array([0xd1, ...fx.bytes]); // tag 17 = COSE_Mac0
    await expect(verifyAttestation(tagged, { currentDate: at, expectedPcrs: "any" })).rejects.toMatchObject({
      code: "ERR_COSE_STRUCTURE",
    });
  });
});

describe("verified-intermediate cache", () => {
  it("serves the second verification of the same instance from cache, still time-checked", async () => {
    const fx = fixtures.find((f) => f.name.startsWith("blocky"))!;
    const cache = new ChainCache(4);
    const options = { currentDate: new Date(fx.timestampMs), expectedPcrs: fx.pcrs, cache };
    expect((await verifyAttestation(fx.bytes, options)).chainFromCache).toBe("none");
    expect(cache.size).toBe(1);
    expect((await verifyAttestation(fx.bytes, options)).chainFromCache).toBe("all");
    // Cached links do not bypass validity at another instant.
    await expect(verifyAttestation(fx.bytes, { ...options, currentDate: new Date(fx.chainWindow[1].getTime() + 1000), maxAgeMs: Infinity })).rejects.toMatchObject({
      code: "ERR_CERT_EXPIRED",
    });
  });

  it("reuses cached intermediates for a new leaf, and still verifies that leaf", async () => {
    // The simulated NSM issues a fresh leaf per document under one cabundle.
    const now = new Date("2026-06-01T00:00:00Z");
    const ca = await createDevCa({ now: () => now });
    const nsm = new SimulatedNsm({ ca, now: () => now, pcrs: { 0: new Uint8Array(48).fill(7) } });
    const anchor = trustAnchorFromPem(ca.rootPem, "development");
    const cache = new ChainCache(4);
    const options = { currentDate: now, expectedPcrs: "any" as const, trustedRoots: [anchor], cache };
    const first = await verifyAttestation(await nsm.attest({}), options);
    const second = await verifyAttestation(await nsm.attest({}), options);
    expect(first.chainFromCache).toBe("none");
    expect(second.chainFromCache).toBe("intermediates");
    expect(second.chain[0]!.sha256).not.toBe(first.chain[0]!.sha256);
    // A leaf signed by a stranger under the cached bundle is still refused.
    const forged = await buildTestChain(now);
    const doc = await testDocument({ ...forged, cabundle: ca.cabundle() }, { timestamp: now.getTime() });
    await expect(verifyAttestation(doc, options)).rejects.toMatchObject({ code: "ERR_CHAIN_BROKEN" });
    await nsm.close();
  });

  it("never caches a chain whose signatures failed", async () => {
    const fx = fixtures.find((f) => f.name.startsWith("blocky"))!;
    const cache = new ChainCache(4);
    const bad = new Uint8Array(fx.bytes);
    bad[bad.length - 1]! ^= 0x01; // COSE signature
    await expect(verifyAttestation(bad, { currentDate: new Date(fx.timestampMs), expectedPcrs: "any", cache })).rejects.toMatchObject({
      code: "ERR_SIGNATURE_INVALID",
    });
    expect(cache.size).toBe(0);
  });

  it("is bounded", async () => {
    const cache = new ChainCache(2);
    for (const fx of fixtures) {
      await verifyAttestation(fx.bytes, { currentDate: new Date(fx.timestampMs), expectedPcrs: "any", allowDebug: true, cache });
    }
    expect(cache.size).toBe(2);
  });
});
