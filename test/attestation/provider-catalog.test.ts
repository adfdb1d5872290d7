import { describe, expect, it } from "vitest";
import { CAPABILITY_NAMES, defaultCapabilities, kindEntry, PROVIDER_CATALOG, type ProviderKind } from "../../attestation/provider-catalog.js";
import { capabilitiesOf, derivedEgress, describeTrustPolicy, FIRST_PARTY_BASE_URLS, parseTrustPolicy, PROVIDER_KINDS } from "../../attestation/trust-policy.js";

/**
 * The catalog of kinds (attestation/provider-catalog.ts) as the trust
 * policy applies it: each preset parses by name alone, its origin is fixed
 * as a first-party one is (a host-written baseUrl is refused outside
 * development), the egress set follows from it, and no policy can give a
 * provider a capability its kind cannot serve.
 */
const KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555";
const PRESETS = PROVIDER_KINDS.filter((k) => kindEntry(k).preset);

function policy(providers: unknown[], extra: Record<string, unknown> = {}): Uint8Array {
  const usesSecret = providers.some((p) => (p as { secret?: string }).secret !== undefined);
  return new TextEncoder().encode(JSON.stringify({ version: 1, providers, ...(usesSecret && { secrets: { kmsKeyArn: KEY_ARN } }), identity: { mode: "ephemeral" }, ...extra }));
}

describe("provider presets", () => {
  it("the catalog has the presets the issue names, each with an https origin and bearer auth", () => {
    expect([...PRESETS].sort()).toEqual(["byteplus", "deepseek", "fireworks", "groq", "mistral", "openrouter", "together", "xai", "zai"]);
    for (const k of PRESETS) {
      expect(kindEntry(k).baseUrl, k).toMatch(/^https:\/\/[a-z0-9.-]+(\/[a-z0-9/]*)?$/);
      expect(kindEntry(k).auth, k).toBe("bearer");
      expect(kindEntry(k).wire, k).toBe("openai");
    }
  });

  it("FIRST_PARTY_BASE_URLS and PROVIDER_KINDS are derived from the one catalog", () => {
    expect([...PROVIDER_KINDS].sort()).toEqual(Object.keys(PROVIDER_CATALOG).sort());
    for (const k of PROVIDER_KINDS) expect(FIRST_PARTY_BASE_URLS[k]).toBe(kindEntry(k).baseUrl);
  });

  it.each(PRESETS)("%s parses by name outside development: fixed origin, derived egress, effective capabilities in the summary", (kind) => {
    const p = parseTrustPolicy(policy([{ name: "p", kind, secret: "P_KEY" }]), { dev: false });
    const base = kindEntry(kind).baseUrl!;
    expect(p.providers[0]).toMatchObject({ kind, baseUrl: base, origin: new URL(base).origin, secret: "P_KEY" });
    expect(derivedEgress(p)).toEqual([`${new URL(base).hostname}:443`, "kms.us-east-1.amazonaws.com:443"].sort());
    const serves = CAPABILITY_NAMES.filter((c) => capabilitiesOf(p.providers[0]!)[c]);
    expect(serves).toEqual([...kindEntry(kind).serves]);
    expect(describeTrustPolicy(p).join("\n")).toContain(`provider p (${kind}) → ${new URL(base).origin} with sealed secret P_KEY; serves ${serves.join(", ")}`);
  });

  it.each(PRESETS)("%s: a baseUrl is refused outside development (the host cannot move a preset), allowed in development", (kind) => {
    const bytes = policy([{ name: "p", kind, baseUrl: "https://evil.example/v1", secret: "P_KEY" }]);
    expect(() => parseTrustPolicy(bytes, { dev: false })).toThrow(expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringContaining("is fixed to") }));
    expect(parseTrustPolicy(bytes, { dev: true }).providers[0]!.origin).toBe("https://evil.example");
  });

  it.each(PRESETS)("%s: a capability it lacks cannot be given to it; one it has can be switched off", (kind) => {
    const lacking = CAPABILITY_NAMES.filter((c) => !kindEntry(kind).serves.includes(c));
    for (const c of lacking) {
      expect(() => parseTrustPolicy(policy([{ name: "p", kind, secret: "K", capabilities: { [c]: true } }]), { dev: false })).toThrow(
        expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringContaining(`provider "p" (kind ${kind}) cannot serve ${c}`) }),
      );
    }
    const off = parseTrustPolicy(policy([{ name: "p", kind, secret: "K", capabilities: { tools: false } }]), { dev: false });
    expect(capabilitiesOf(off.providers[0]!)).toMatchObject({ chat: true, tools: false });
  });
});

describe("capabilities of the other kinds", () => {
  it("images on anthropic, embeddings on groq, images on gemini are refused with the provider's name", () => {
    for (const [kind, cap] of [
      ["anthropic", "images"],
      ["groq", "embeddings"],
      ["gemini", "images"],
      ["bedrock", "embeddings"],
    ] as const) {
      const extra = kind === "bedrock" ? { region: "us-east-1", accountId: "111122223333" } : { secret: "K" };
      expect(() => parseTrustPolicy(policy([{ name: "x1", kind, ...extra, capabilities: { [cap]: true } }]), { dev: false })).toThrow(
        expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringContaining(`provider "x1" (kind ${kind}) cannot serve ${cap}`) }),
      );
    }
  });

  it("openai-compatible: every capability on unless switched off, said in the summary; without chat, streaming and tools are off", () => {
    // responses is the one asked for: most OpenAI-compatible servers speak Chat Completions only.
    expect(defaultCapabilities("openai-compatible")).toEqual({ chat: true, streaming: true, tools: true, embeddings: true, images: true, responses: false });
    const p = parseTrustPolicy(policy([{ name: "emb", kind: "openai-compatible", baseUrl: "https://llm.example/v1", capabilities: { chat: false } }]), { dev: false });
    expect(capabilitiesOf(p.providers[0]!)).toEqual({ chat: false, streaming: false, tools: false, embeddings: true, images: true, responses: false });
    expect(describeTrustPolicy(p).join("\n")).toContain("serves embeddings, images");
    expect(() =>
      parseTrustPolicy(policy([{ name: "emb", kind: "openai-compatible", baseUrl: "https://llm.example/v1", capabilities: { chat: false, streaming: true } }]), { dev: false }),
    ).toThrow(expect.objectContaining({ message: expect.stringContaining("streaming needs chat") }));
    expect(() => parseTrustPolicy(policy([{ name: "x", kind: "openai-compatible", baseUrl: "https://llm.example/v1", capabilities: { video: true } }]), { dev: false })).toThrow(
      expect.objectContaining({ message: expect.stringContaining("unknown field") }),
    );
  });

  it("every kind's defaults are within what it serves", () => {
    for (const k of PROVIDER_KINDS as ProviderKind[]) for (const c of CAPABILITY_NAMES) if (defaultCapabilities(k)[c]) expect(kindEntry(k).serves, `${k}.${c}`).toContain(c);
  });
});

describe("bedrock in the trust policy", () => {
  const bedrock = (fields: Record<string, unknown>) => policy([{ name: "aws", kind: "bedrock", region: "eu-central-1", ...fields }]);

  it("parses with a pinned role: the regional runtime origin, and the regional STS endpoint in the derived egress", () => {
    const p = parseTrustPolicy(bedrock({ roleArn: "arn:aws:iam::111122223333:role/path/egw-bedrock" }), { dev: false });
    expect(p.providers[0]).toMatchObject({
      kind: "bedrock",
      origin: "https://bedrock-runtime.eu-central-1.amazonaws.com",
      bedrock: { region: "eu-central-1", accountId: "111122223333", roleArn: "arn:aws:iam::111122223333:role/path/egw-bedrock", stsUrl: "https://sts.eu-central-1.amazonaws.com" },
    });
    expect(derivedEgress(p)).toEqual(["bedrock-runtime.eu-central-1.amazonaws.com:443", "sts.eu-central-1.amazonaws.com:443"]);
    expect(describeTrustPolicy(p).join("\n")).toContain(
      "as AWS arn:aws:iam::111122223333:role/path/egw-bedrock (checked with STS at https://sts.eu-central-1.amazonaws.com); serves chat, streaming, tools",
    );
  });

  it("the China partition's domain", () => {
    const p = parseTrustPolicy(policy([{ name: "aws", kind: "bedrock", region: "cn-north-1", accountId: "111122223333" }]), { dev: false });
    expect(derivedEgress(p)).toEqual(["bedrock-runtime.cn-north-1.amazonaws.com.cn:443", "sts.cn-north-1.amazonaws.com.cn:443"]);
  });

  it.each([
    ["no pin at all (the host's own account would do)", {}, "must pin the AWS identity"],
    ["a malformed account id", { accountId: "1234" }, "invalid format"],
    ["a role ARN of another account than accountId", { accountId: "111122223333", roleArn: "arn:aws:iam::444455556666:role/x" }, "names account 444455556666"],
    ["a user, not a role", { roleArn: "arn:aws:iam::111122223333:user/alice" }, "must be an IAM role ARN"],
    ["a sealed secret (Bedrock signs with role credentials)", { accountId: "111122223333", secret: "AWS_KEY" }, "takes no sealed secret"],
    ["a baseUrl outside development", { accountId: "111122223333", baseUrl: "https://bedrock.evil.example" }, "is fixed to https://bedrock-runtime.eu-central-1.amazonaws.com"],
    [
      "an stsUrl outside development (a host-run STS would vouch for anything)",
      { accountId: "111122223333", stsUrl: "https://sts.evil.example" },
      "is fixed to https://sts.eu-central-1.amazonaws.com",
    ],
    ["no region", { region: undefined, accountId: "111122223333" }, "region"],
  ])("refuses %s", (_what, fields, message) => {
    expect(() => parseTrustPolicy(bedrock(fields), { dev: false })).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringContaining(message) }),
    );
  });

  it("in development baseUrl and stsUrl may point at a local mock, and both are in the egress set", () => {
    const p = parseTrustPolicy(bedrock({ accountId: "111122223333", baseUrl: "http://127.0.0.1:4000", stsUrl: "http://127.0.0.1:4001" }), { dev: true });
    expect(derivedEgress(p)).toEqual(["127.0.0.1:4000", "127.0.0.1:4001"]);
  });
});
