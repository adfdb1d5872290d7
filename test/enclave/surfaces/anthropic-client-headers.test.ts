import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isGatewayError } from "../../../enclave/errors.js";
import { anthropicClientHeaders, MAX_ANTHROPIC_BETA_HEADER, MAX_ANTHROPIC_BETAS, refuseUntranslatableBetas } from "../../../enclave/surfaces/anthropic-messages/client-headers.js";
import { estimateInputTokens } from "../../../enclave/surfaces/anthropic-messages/estimate-tokens.js";

const reader = (h: Record<string, string>) => ({ get: (name: string) => h[name] ?? null });

describe("anthropicClientHeaders", () => {
  it("any header values: a bounded, well-formed result or invalid_request, nothing else", () => {
    fc.assert(
      fc.property(fc.option(fc.string({ maxLength: 40 }), { nil: undefined }), fc.option(fc.string({ maxLength: 3000 }), { nil: undefined }), (version, beta) => {
        const headers: Record<string, string> = {};
        if (version !== undefined) headers["anthropic-version"] = version;
        if (beta !== undefined) headers["anthropic-beta"] = beta;
        try {
          const out = anthropicClientHeaders(reader(headers));
          if (out.version !== undefined) expect(out.version).toMatch(/^\d{4}-\d{2}-\d{2}$/);
          if (out.beta !== undefined) {
            expect(out.beta.length).toBeLessThanOrEqual(MAX_ANTHROPIC_BETA_HEADER);
            expect(out.beta.split(",").length).toBeLessThanOrEqual(MAX_ANTHROPIC_BETAS);
            expect(out.beta).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*(,[A-Za-z0-9][A-Za-z0-9._-]*)*$/);
          }
        } catch (err) {
          expect(isGatewayError(err) && err.code === "invalid_request").toBe(true);
        }
      }),
    );
  });

  it("a list, repeated headers joined by ', ', normalises to one comma-separated list", () => {
    expect(anthropicClientHeaders(reader({ "anthropic-beta": "a-1, b-2 ,c-3", "anthropic-version": "2023-06-01" }))).toEqual({ beta: "a-1,b-2,c-3", version: "2023-06-01" });
    expect(anthropicClientHeaders(reader({ "anthropic-beta": " , " }))).toEqual({});
  });

  it("translated routes: only the token-counting beta passes", () => {
    expect(() => refuseUntranslatableBetas({ beta: "token-counting-2024-11-01" })).not.toThrow();
    expect(() => refuseUntranslatableBetas({})).not.toThrow();
    expect(() => refuseUntranslatableBetas({ beta: "token-counting-2024-11-01,files-api-2025-04-14" })).toThrow(/files-api-2025-04-14/);
  });
});

describe("estimateInputTokens", () => {
  it("four characters a token over the text, four per turn; markers and depth do not count", () => {
    expect(estimateInputTokens({ messages: [{ role: "user", content: "abcd" }] })).toBe(1 + 4);
    expect(estimateInputTokens({ system: "12345678", messages: [] })).toBe(2);
    expect(estimateInputTokens({ messages: [{ role: "user", content: [{ type: "text", text: "abcdefgh", cache_control: { type: "ephemeral" } }] }] })).toBe(2 + 4);
    let deep: unknown = "x".repeat(400);
    for (let i = 0; i < 200; i++) deep = [deep];
    expect(estimateInputTokens({ messages: [{ role: "user", content: deep }] })).toBe(4);
  });
});
