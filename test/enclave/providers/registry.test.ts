import { describe, expect, it } from "vitest";
import { PROVIDER_KINDS, type ProviderKind } from "../../../attestation/trust-policy.js";
import { createAdapters, PROVIDER_MODULES, providerModuleFor } from "../../../enclave/providers/registry.js";
import type { ProviderConfig } from "../../../enclave/runtime-config.js";
import { staticSecrets } from "../../../enclave/secrets.js";

/**
 * The trust policy's PROVIDER_KINDS is the one list of kinds (attestation/
 * imports nothing of ours, so it cannot read the registry). These keep the
 * registry in step with it: every kind served, by exactly one module, and
 * nothing served that a policy could not name.
 */
describe("provider registry", () => {
  const served = PROVIDER_MODULES.flatMap((m) => [...m.kinds]);

  it("serves exactly the trust policy's kinds", () => {
    expect([...served].sort()).toEqual([...PROVIDER_KINDS].sort());
  });

  it("serves each kind by one module only", () => {
    expect(new Set(served).size).toBe(served.length);
    for (const kind of PROVIDER_KINDS) expect(PROVIDER_MODULES.filter((m) => m.kinds.includes(kind))).toHaveLength(1);
  });

  it("finds no module for a kind the trust policy does not know", () => {
    expect(providerModuleFor("bedrock" as ProviderKind)).toBeUndefined();
  });

  const configs: Record<ProviderKind, ProviderConfig> = {
    openai: { name: "o", kind: "openai", baseUrl: "https://api.openai.com/v1", origin: "https://api.openai.com", secret: "k" },
    "openai-compatible": { name: "c", kind: "openai-compatible", baseUrl: "https://llm.example/v1", origin: "https://llm.example" },
    xai: { name: "x", kind: "xai", baseUrl: "https://api.x.ai/v1", origin: "https://api.x.ai", secret: "k" },
    anthropic: { name: "a", kind: "anthropic", baseUrl: "https://api.anthropic.com", origin: "https://api.anthropic.com", secret: "k" },
    gemini: { name: "g", kind: "gemini", baseUrl: "https://generativelanguage.googleapis.com", origin: "https://generativelanguage.googleapis.com", secret: "k" },
    local: { name: "l", kind: "local", baseUrl: "local://", origin: "local" },
  };
  // xAI is the OpenAI wire format at a fixed origin; ProviderInfo.kind names the wire format.
  const infoKind: Record<ProviderKind, string> = {
    openai: "openai",
    "openai-compatible": "openai-compatible",
    xai: "openai-compatible",
    anthropic: "anthropic",
    gemini: "gemini",
    local: "local",
  };

  it.each([...PROVIDER_KINDS])("createAdapters builds an adapter for kind %s under its configured name", (kind) => {
    const adapters = createAdapters([configs[kind]], staticSecrets(new Map([["k", "secret-key"]])));
    const adapter = adapters.get(configs[kind].name);
    expect(adapter?.info).toMatchObject({ name: configs[kind].name, kind: infoKind[kind] });
  });

  it("createAdapters refuses a kind no module serves instead of leaving the provider out", () => {
    const stray = { name: "b", kind: "bedrock", baseUrl: "https://bedrock.example", origin: "https://bedrock.example" } as unknown as ProviderConfig;
    expect(() => createAdapters([configs.local, stray], staticSecrets(new Map()))).toThrow(expect.objectContaining({ code: "ERR_CONFIG" }));
  });
});
