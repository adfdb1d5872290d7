import { describe, expect, it } from "vitest";
import { hashToken } from "../../enclave/auth.js";
import { Router } from "../../enclave/router.js";
import { createAdapters } from "../../enclave/providers/registry.js";
import { ConfigError, parseRuntimeConfig } from "../../enclave/runtime-config.js";
import { staticSecrets } from "../../enclave/secrets.js";

const base = {
  version: 1,
  providers: [
    { name: "local", kind: "local" },
    { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
    { name: "anthropic", kind: "anthropic", secret: "ANTHROPIC_API_KEY" },
  ],
  models: { "gpt-4o": { provider: "openai", model: "gpt-4o" } },
  egressAllowlist: ["api.openai.com:443", "api.anthropic.com:443"],
  clients: [{ name: "a", tokenSha256: hashToken("x"), models: ["*"] }],
};
const parse = (value: unknown) => parseRuntimeConfig(new TextEncoder().encode(JSON.stringify(value)));

describe("runtime config", () => {
  it("control: a valid config parses, with defaults filled in", () => {
    const c = parse(base);
    expect(c.prefixRouting).toBe(true);
    expect(c.limits.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(c.providers[1]!.baseUrl).toBe("https://api.openai.com/v1");
  });

  const rows: [string, unknown, RegExp][] = [
    ["an alias named after one provider that routes to another", { ...base, models: { "anthropic/claude-x": { provider: "openai", model: "gpt-4o" } } }, /named after provider "anthropic" but routes to "openai"/],
    ["a provider host missing from the egress allowlist", { ...base, egressAllowlist: ["api.openai.com:443"] }, /does not list api\.anthropic\.com:443/],
    ["an unknown field", { ...base, extra: 1 }, /unknown field/],
    ["a route to an unknown provider", { ...base, models: { x: { provider: "nobody", model: "m" } } }, /names no configured provider/],
    ["a fallback to an unknown model", { ...base, models: { x: { provider: "openai", model: "m", fallbacks: ["y"] } } }, /is not a configured model/],
    ["duplicate provider names", { ...base, providers: [...base.providers, { name: "local", kind: "local" }] }, /duplicate provider name/],
    ["two clients sharing a token", { ...base, clients: [base.clients[0], { ...base.clients[0], name: "b" }] }, /share a token/],
    ["a token stored in clear", { ...base, clients: [{ name: "a", tokenSha256: "my-secret-token", models: ["*"] }] }, /tokenSha256/],
    ["a base URL with credentials", { ...base, providers: [{ name: "x", kind: "openai-compatible", baseUrl: "https://u:p@h.example/v1" }], egressAllowlist: ["h.example:443"] }, /credentials/],
    ["a negative limit", { ...base, limits: { maxBodyBytes: -1 } }, /limits\.maxBodyBytes/],
    ["an unknown limit", { ...base, limits: { speed: 1 } }, /unknown field/],
    ["not JSON", "{", /not valid JSON/],
    ["version 2", { ...base, version: 2 }, /version/],
  ];
  for (const [name, value, message] of rows) {
    it(`refuses ${name}`, () => {
      const bytes = typeof value === "string" ? new TextEncoder().encode(value) : new TextEncoder().encode(JSON.stringify(value));
      expect(() => parseRuntimeConfig(bytes)).toThrow(ConfigError);
      expect(() => parseRuntimeConfig(bytes)).toThrow(message);
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
