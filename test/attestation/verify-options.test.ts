import { describe, expect, it } from "vitest";
import { verifyAttestation } from "../../attestation/verify.js";
import type { VerifyOptions } from "../../attestation/verify-options.js";
import { loadNitroFixtures } from "../helpers/fixtures.js";

const fx = loadNitroFixtures().find((f) => f.name.startsWith("blocky"))!;
const at = new Date(fx.timestampMs);

async function codeOf(options: unknown): Promise<string> {
  try {
    await verifyAttestation(fx.bytes, options as VerifyOptions);
    return "accepted";
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe("policy inputs fail closed", () => {
  it("control: complete options are accepted", async () => {
    expect(await codeOf({ currentDate: at, expectedPcrs: fx.pcrs })).toBe("accepted");
  });

  const rows: [string, unknown][] = [
    ["no options at all", undefined],
    ["no currentDate (the verifier never reads the clock)", { expectedPcrs: "any" }],
    ["currentDate is not a Date", { currentDate: fx.timestampMs, expectedPcrs: "any" }],
    ["currentDate is an invalid Date", { currentDate: new Date("nope"), expectedPcrs: "any" }],
    ["no expectedPcrs", { currentDate: at }],
    ["expectedPcrs empty", { currentDate: at, expectedPcrs: {} }],
    ["expectedPcrs with an undefined value", { currentDate: at, expectedPcrs: { 0: undefined } }],
    ["expectedPcrs with a short value", { currentDate: at, expectedPcrs: { 0: "00".repeat(47) } }],
    ["expectedPcrs with non-hex", { currentDate: at, expectedPcrs: { 0: "zz".repeat(48) } }],
    ["expectedPcrs index 32", { currentDate: at, expectedPcrs: { 32: "00".repeat(48) } }],
    ["expectedPcrs index -1", { currentDate: at, expectedPcrs: new Map([[-1, "00".repeat(48)]]) }],
    ["nonce present but undefined", { currentDate: at, expectedPcrs: "any", nonce: undefined }],
    ["userData present but null", { currentDate: at, expectedPcrs: "any", userData: null }],
    ["publicKey of the wrong type", { currentDate: at, expectedPcrs: "any", publicKey: 5 }],
    ["nonce longer than 1024 bytes", { currentDate: at, expectedPcrs: "any", nonce: "00".repeat(1025) }],
    ["odd-length hex nonce", { currentDate: at, expectedPcrs: "any", nonce: "abc" }],
    ["negative maxAgeMs", { currentDate: at, expectedPcrs: "any", maxAgeMs: -1 }],
    ["NaN clockSkewMs", { currentDate: at, expectedPcrs: "any", clockSkewMs: Number.NaN }],
    ["allowDebug as a string", { currentDate: at, expectedPcrs: "any", allowDebug: "yes" }],
    ["empty trustedRoots", { currentDate: at, expectedPcrs: "any", trustedRoots: [] }],
  ];
  for (const [name, options] of rows) {
    it(`${name} → ERR_POLICY_INVALID`, async () => {
      expect(await codeOf(options)).toBe("ERR_POLICY_INVALID");
    });
  }

  it("expectedPcrs accepts bytes, hex of either case, object or Map", async () => {
    const pcr0 = fx.pcrs["0"]!;
    for (const expectedPcrs of [{ 0: pcr0.toUpperCase() }, new Map([[0, new Uint8Array(Buffer.from(pcr0, "hex"))]]), { "0": pcr0 }]) {
      expect(await codeOf({ currentDate: at, expectedPcrs })).toBe("accepted");
    }
  });

  it("errors never echo the nonce, user_data or public_key they compared", async () => {
    const secret = "c0ffee".repeat(10);
    for (const key of ["nonce", "userData", "publicKey"]) {
      try {
        await verifyAttestation(fx.bytes, { currentDate: at, expectedPcrs: "any", [key]: secret });
        expect.unreachable();
      } catch (err) {
        const text = `${(err as Error).message} ${JSON.stringify(err)}`;
        expect(text).not.toContain("c0ffee");
        expect(text).not.toContain(fx.meta.decoded.nonce.slice(0, 16));
      }
    }
  });
});
