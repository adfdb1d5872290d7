import { describe, expect, it } from "vitest";
import { hashToken } from "../../enclave/auth.js";
import { Router } from "../../enclave/router.js";
import { createAdapters } from "../../enclave/providers/registry.js";
import { loadRuntimeConfig } from "../../enclave/runtime-config.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { splitConfig } from "../helpers/split-config.js";

const ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
function parseRuntimeConfig(bytes: Uint8Array) {
  const docs = splitConfig(Buffer.from(bytes).toString("utf8"), { secretsKmsKeyArn: ARN });
  return loadRuntimeConfig(new TextEncoder().encode(docs.trustPolicy), new TextEncoder().encode(docs.operations), { dev: false });
}

const base = {
  version: 1,
  providers: [
    { name: "local", kind: "local" },
    { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
    { name: "anthropic", kind: "anthropic", secret: "ANTHROPIC_API_KEY" },
  ],
  models: { "gpt-4o": { provider: "openai", model: "gpt-4o" } },
  clients: [{ name: "a", tokenSha256: hashToken("x"), models: ["*"] }],
};
const parse = (value: unknown) => parseRuntimeConfig(new TextEncoder().encode(JSON.stringify(value)));

describe("runtime config (trust policy + operations)", () => {
  it("control: a valid pair parses, with defaults filled in and the egress allowlist derived", () => {
    const c = parse(base);
    expect(c.prefixRouting).toBe(true);
    expect(c.limits.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(c.providers[1]!.baseUrl).toBe("https://api.openai.com/v1");
    expect(c.egressAllowlist).toEqual(["api.anthropic.com:443", "api.openai.com:443", "kms.us-east-1.amazonaws.com:443"]);
  });

  it("a KMS endpoint override the caller checked is added to the derived egress, and nothing else", () => {
    const docs = splitConfig(JSON.stringify(base), { secretsKmsKeyArn: ARN });
    const c = loadRuntimeConfig(new TextEncoder().encode(docs.trustPolicy), new TextEncoder().encode(docs.operations), {
      dev: false,
      kmsEndpoint: "https://vpce-1.kms.us-east-1.vpce.amazonaws.com",
    });
    expect(c.egressAllowlist).toContain("vpce-1.kms.us-east-1.vpce.amazonaws.com:443");
    expect(c.egressAllowlist).toHaveLength(4);
  });

  it("an operations document that names a destination, or any unknown field, is refused; so is an unknown trust-policy field", () => {
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const trust = enc({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } });
    for (const extra of [{ egressAllowlist: ["evil.example:443"] }, { providers: [] }, { baseUrl: "https://evil.example" }, { kmsKeyId: ARN }, { extra: 1 }]) {
      expect(() => loadRuntimeConfig(trust, enc({ version: 1, clients: [], ...extra }), { dev: true })).toThrow(
        expect.objectContaining({ code: "ERR_CONFIG", message: expect.stringMatching(/unknown field/) }),
      );
    }
    expect(() =>
      loadRuntimeConfig(enc({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" }, clients: [] }), enc({ version: 1, clients: [] }), {
        dev: true,
      }),
    ).toThrow(expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID" }));
  });

  it("a client allowed a model the trust policy does not route is refused (a typo, not a silent no-op)", () => {
    expect(() => parse({ ...base, clients: [{ name: "a", tokenSha256: hashToken("x"), models: ["gpt-5"] }] })).toThrow(/names no model of the trust policy/);
    expect(parse({ ...base, clients: [{ name: "a", tokenSha256: hashToken("x"), models: ["gpt-4o", "anthropic/claude-x", "local/*"] }] }).clients[0]!.models).toHaveLength(3);
  });

  const rows: [string, unknown, RegExp][] = [
    [
      "an alias named after one provider that routes to another",
      { ...base, models: { "anthropic/claude-x": { provider: "openai", model: "gpt-4o" } } },
      /named after provider "anthropic" but routes to "openai"/,
    ],
    ["a route to an unknown provider", { ...base, models: { x: { provider: "nobody", model: "m" } } }, /names no configured provider/],
    ["a fallback to an unknown model", { ...base, models: { x: { provider: "openai", model: "m", fallbacks: ["y"] } } }, /is not a configured model/],
    ["duplicate provider names", { ...base, providers: [...base.providers, { name: "local", kind: "local" }] }, /duplicate provider name/],
    ["two clients sharing a token", { ...base, clients: [base.clients[0], { ...base.clients[0], name: "b" }] }, /share a token/],
    ["a token stored in clear", { ...base, clients: [{ name: "a", tokenSha256: "my-secret-token", models: ["*"] }] }, /tokenSha256/],
    ["a base URL with credentials", { ...base, providers: [{ name: "x", kind: "openai-compatible", baseUrl: "https://u:p@h.example/v1" }] }, /credentials/],
    ["a negative limit", { ...base, limits: { maxBodyBytes: -1 } }, /limits\.maxBodyBytes/],
    ["an unknown limit", { ...base, limits: { speed: 1 } }, /unknown field/],
    [
      "a first-party kind pointed elsewhere",
      { ...base, providers: [{ name: "openai", kind: "openai", baseUrl: "https://evil.example/v1", secret: "K" }] },
      /fixed to https:\/\/api\.openai\.com/,
    ],
    ["plain http outside development", { ...base, providers: [{ name: "x", kind: "openai-compatible", baseUrl: "http://h.example/v1" }] }, /must be https/],
    [
      "one secret for two providers",
      {
        ...base,
        providers: [
          { name: "x", kind: "openai-compatible", baseUrl: "https://h.example/v1", secret: "K" },
          { name: "y", kind: "openai-compatible", baseUrl: "https://g.example/v1", secret: "K" },
        ],
      },
      /one secret serves one provider/,
    ],
  ];
  for (const [name, value, message] of rows) {
    it(`refuses ${name}`, () => {
      const bytes = typeof value === "string" ? new TextEncoder().encode(value) : new TextEncoder().encode(JSON.stringify(value));
      expect(() => parseRuntimeConfig(bytes)).toThrow(message);
      expect(() => parseRuntimeConfig(bytes)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_(CONFIG|TRUST_POLICY_INVALID)$/) }));
    });
  }
});

describe("routing", () => {
  const config = parse({ ...base, models: { ...base.models, "openai/gpt-4o-alias": { provider: "openai", model: "gpt-4o-2024-08-06" } } });
  const router = new Router(config, createAdapters(config.providers, staticSecrets(new Map())));

  it("explicit routes win; prefix routing reaches the named provider", () => {
    expect(router.resolve("gpt-4o")).toMatchObject({ upstreamModel: "gpt-4o", label: "gpt-4o" });
    expect(router.resolve("gpt-4o").adapter.info.name).toBe("openai");
    expect(router.resolve("openai/gpt-4o-alias").upstreamModel).toBe("gpt-4o-2024-08-06");
    const prefixed = router.resolve("anthropic/claude-sonnet-4-5");
    expect(prefixed.adapter.info.name).toBe("anthropic");
    expect(prefixed.upstreamModel).toBe("claude-sonnet-4-5");
    expect(prefixed.label).toBe("anthropic/*");
  });

  it("unknown providers and models are 404, never another provider", () => {
    expect(() => router.resolve("mistral/large")).toThrow(expect.objectContaining({ code: "model_not_found" }));
    expect(() => router.resolve("claude-sonnet-4-5")).toThrow(expect.objectContaining({ code: "model_not_found" }));
    expect(() => router.resolve("__proto__")).toThrow(expect.objectContaining({ code: "model_not_found" }));
  });

  it("prefix routing can be switched off", () => {
    const off = parse({ ...base, prefixRouting: false });
    const r = new Router(off, createAdapters(off.providers, staticSecrets(new Map())));
    expect(() => r.resolve("anthropic/claude-sonnet-4-5")).toThrow(expect.objectContaining({ code: "model_not_found" }));
  });
});
