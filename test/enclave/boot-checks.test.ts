import { describe, expect, it } from "vitest";
import { createAdapters, requireCapabilityCalls } from "../../enclave/providers/registry.js";
import type { ProviderConfig } from "../../enclave/runtime-config.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { configJson, startHarness } from "../helpers/enclave-harness.js";

/**
 * What the boot refuses, so that no provider is found broken per request
 * (issue 13: "a missing secret, or a capability a provider kind cannot
 * serve, fails at boot with the provider's name"). Each boot goes through
 * bootEnclave with the simulated NSM. The sealed-file case (a hostile host
 * drops one provider's sealed secret from the file) is in
 * sealed-secrets-hostile-host.test.ts: ERR_SECRET_MISSING before any KMS call.
 */
const withProvider = (provider: Record<string, unknown>) =>
  configJson({ providers: [{ name: "local", kind: "local" }, provider], models: { local: { provider: "local", model: "local" }, m: { provider: provider.name, model: "x" } } });

describe("boot checks", () => {
  it("a provider whose secret was not handed in stops the boot, naming the provider and the secret (not a 502 per request later)", async () => {
    const config = withProvider({ name: "groqy", kind: "groq", secret: "GROQ_API_KEY" });
    await expect(startHarness({ config })).rejects.toMatchObject({ code: "ERR_SECRET_MISSING", message: expect.stringContaining('"groqy" (secret GROQ_API_KEY)') });
    const h = await startHarness({ config, secrets: new Map([["GROQ_API_KEY", "gsk-test"]]) });
    await h.close();
  });

  it("an empty value counts as missing: the host cannot pass the check with a blank key", async () => {
    await expect(
      startHarness({ config: withProvider({ name: "mist", kind: "mistral", secret: "MISTRAL_API_KEY" }), secrets: new Map([["MISTRAL_API_KEY", ""]]) }),
    ).rejects.toMatchObject({
      code: "ERR_SECRET_MISSING",
    });
  });

  it("a capability the kind cannot serve stops the boot, naming the provider: images on anthropic, embeddings on a preset without them", async () => {
    await expect(
      startHarness({ config: withProvider({ name: "claude", kind: "anthropic", secret: "A", capabilities: { images: true } }), secrets: new Map([["A", "k"]]) }),
    ).rejects.toMatchObject({
      code: "ERR_TRUST_POLICY_INVALID",
      message: expect.stringContaining('provider "claude" (kind anthropic) cannot serve images'),
    });
    await expect(
      startHarness({ config: withProvider({ name: "ds", kind: "deepseek", secret: "D", capabilities: { embeddings: true } }), secrets: new Map([["D", "k"]]) }),
    ).rejects.toMatchObject({
      code: "ERR_TRUST_POLICY_INVALID",
      message: expect.stringContaining('provider "ds" (kind deepseek) cannot serve embeddings'),
    });
  });

  it("a capability its adapter has no call for (catalog and module drifted) is refused, naming the provider", () => {
    const gemini: ProviderConfig = {
      name: "g",
      kind: "gemini",
      baseUrl: "https://generativelanguage.googleapis.com",
      origin: "https://generativelanguage.googleapis.com",
      secret: "A",
    };
    const real = createAdapters([gemini], staticSecrets(new Map([["A", "k"]]))).get("g")!;
    expect(typeof real.embeddings).toBe("function");
    // The same adapter without its embeddings call: what a module that fell behind the catalog would build.
    const lacking = { info: real.info, chat: real.chat, chatStream: real.chatStream };
    expect(() => requireCapabilityCalls(gemini, lacking)).toThrow(
      expect.objectContaining({ code: "ERR_CONFIG", message: expect.stringContaining('provider "g": kind gemini is to serve embeddings') }),
    );
    expect(() => requireCapabilityCalls({ ...gemini, capabilities: { embeddings: false } }, lacking)).not.toThrow();
  });
});
