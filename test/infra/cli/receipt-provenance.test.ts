import { describe, expect, it } from "vitest";
import type { ReceiptClaims } from "../../../attestation/receipt.js";
import { provenanceLines } from "../../../infra/cli/receipt.js";

/** `egw receipt verify` prints what the receipt says about the upstream that answered. */
const base: ReceiptClaims = {
  v: 2,
  id: "egw-1",
  time: 0,
  method: "POST",
  path: "/v1/chat/completions",
  surface: "chat.completions",
  model: "gpt",
  provider: "openai",
  status: 200,
  stream: false,
  bodyRead: true,
  requestSha256: new Uint8Array(32),
  responseSha256: new Uint8Array(32),
};

describe("provenanceLines", () => {
  it("prints the TLS leaf's SPKI hash, the provider's request id and the reported model", () => {
    const spki = new Uint8Array(32).map((_, i) => i);
    const lines = provenanceLines({ ...base, upstream: { origin: "https://api.openai.com", tlsSpkiSha256: spki, requestId: "req_abc", model: "gpt-4o-2024-08-06" } });
    expect(lines).toContain("  upstream: https://api.openai.com");
    expect(lines).toContain(`    TLS leaf SPKI sha256: ${Buffer.from(spki).toString("hex")}`);
    expect(lines).toContain("    provider request id: req_abc");
    expect(lines).toContain("    model reported: gpt-4o-2024-08-06");
  });

  it("says so when a field is absent", () => {
    const lines = provenanceLines({ ...base, upstream: { origin: "local" } });
    expect(lines).toContain("    TLS leaf SPKI sha256: (none: local or plain-http upstream)");
    expect(lines).toContain("    provider request id: (none sent)");
    expect(provenanceLines(base)).toContain("  upstream: none answered");
  });

  it("never hands a terminal a control character from the receipt", () => {
    const lines = provenanceLines({ ...base, upstream: { origin: "https://x", requestId: "req\u001b[2Jx", model: "m\u0007" } });
    expect(lines).toContain("    provider request id: req?[2Jx");
    expect(lines.join("\n")).not.toMatch(/[\u001b\u0007]/);
  });
});
