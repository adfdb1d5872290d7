import { describe, expect, it } from "vitest";
import { kindEntry } from "../../../attestation/provider-catalog.js";
import { FIRST_PARTY_BASE_URLS, PROVIDER_KINDS, type ProviderKind } from "../../../attestation/trust-policy.js";
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
    expect(providerModuleFor("nonesuch" as ProviderKind)).toBeUndefined();
  });

  const name = (kind: ProviderKind) => kind.replace(/[^a-z]/g, "").slice(0, 12);
  const configOf = (kind: ProviderKind): ProviderConfig => {
    if (kind === "local") return { name: name(kind), kind, baseUrl: "local://", origin: "local" };
    if (kind === "bedrock") {
      const baseUrl = "https://bedrock-runtime.us-east-1.amazonaws.com";
      return { name: name(kind), kind, baseUrl, origin: baseUrl, bedrock: { region: "us-east-1", accountId: "111122223333", stsUrl: "https://sts.us-east-1.amazonaws.com" } };
    }
    const baseUrl = FIRST_PARTY_BASE_URLS[kind] ?? "https://llm.example/v1";
    return { name: name(kind), kind, baseUrl, origin: new URL(baseUrl).origin, secret: "k" };
  };
  // ProviderInfo.kind names the wire format; presets are the OpenAI wire format at a fixed origin.
  const infoKind = (kind: ProviderKind): string => {
    const wire = kindEntry(kind).wire;
    return wire === "openai" ? (kind === "openai" ? "openai" : "openai-compatible") : wire;
  };

  it.each([...PROVIDER_KINDS])("createAdapters builds an adapter for kind %s under its configured name", (kind) => {
    const adapters = createAdapters([configOf(kind)], staticSecrets(new Map([["k", "secret-key"]])));
    const adapter = adapters.get(name(kind));
    expect(adapter?.info).toMatchObject({ name: name(kind), kind: infoKind(kind) });
  });

  it("createAdapters refuses a kind no module serves instead of leaving the provider out", () => {
    const stray = { name: "b", kind: "nonesuch", baseUrl: "https://nonesuch.example", origin: "https://nonesuch.example" } as unknown as ProviderConfig;
    expect(() => createAdapters([configOf("local"), stray], staticSecrets(new Map()))).toThrow(expect.objectContaining({ code: "ERR_CONFIG" }));
  });
});
