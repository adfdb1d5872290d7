import { describe, expect, it } from "vitest";

describe("the attestation module's public surface", () => {
  it("exports what docs/PROTOCOL.md tells relying parties to import", async () => {
    const api = await import("../../attestation/index.js");
    for (const name of ["verifyAttestation", "receiptKeyFromSpki", "verifyReceipt", "verifyReceiptWithKeys", "decodeBinding", "splitStreamReceipt"] as const) {
      expect(typeof api[name], name).toBe("function");
    }
  });
});
