import { describe, expect, it } from "vitest";
import { derivedEgress, describeTrustPolicy, kmsEndpointHost, parseTrustPolicy, secretBindings, trustPolicySha256, upstreamOrigins } from "../../attestation/trust-policy.js";

const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_ARN = "arn:aws:kms:us-east-1:444455556666:key/mrk-0123456789abcdef0123456789abcdef";
const PCR = "ab".repeat(48);

function base(): Record<string, unknown> {
  return {
    version: 1,
    providers: [
      { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
      { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example/v1/", secret: "ACME_KEY" },
      { name: "local", kind: "local" },
    ],
    models: { gpt: { provider: "openai", model: "gpt-5" } },
    secrets: { kmsKeyArn: ARN },
    identity: { mode: "ephemeral" },
  };
}

const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const parse = (v: unknown, dev = false) => parseTrustPolicy(bytes(v), { dev });

function mutate(fn: (p: Record<string, unknown>) => void): Record<string, unknown> {
  const p = base();
  fn(p);
  return p;
}

describe("trust policy codec", () => {
  it("parses the documented shape: fixed first-party origins, derived egress, secret bindings", () => {
    const policy = parse(base());
    expect(policy.providers.map((p) => [p.name, p.origin, p.baseUrl])).toEqual([
      ["openai", "https://api.openai.com", "https://api.openai.com/v1"],
      ["acme", "https://llm.acme.example", "https://llm.acme.example/v1"],
      ["local", "local", "local://"],
    ]);
    expect(upstreamOrigins(policy)).toEqual(["https://api.openai.com", "https://llm.acme.example", "local"]);
    expect(derivedEgress(policy)).toEqual(["api.openai.com:443", "kms.eu-west-1.amazonaws.com:443", "llm.acme.example:443"]);
    expect(secretBindings(policy)).toEqual([
      { name: "OPENAI_API_KEY", origin: "https://api.openai.com", provider: "openai" },
      { name: "ACME_KEY", origin: "https://llm.acme.example", provider: "acme" },
    ]);
    expect(policy.prefixRouting).toBe(true);
    expect(describeTrustPolicy(policy).join("\n")).toContain("identity: ephemeral");
  });

  it("derives the KMS endpoint of a sealed identity's region too, and the China partition's domain", () => {
    const policy = parse(mutate((p) => (p.identity = { mode: "sealed", kmsKeyArn: OTHER_ARN, generatorPcrs: [{ 0: PCR, 1: PCR, 2: PCR }] })));
    expect(derivedEgress(policy)).toContain("kms.us-east-1.amazonaws.com:443");
    expect(policy.identity).toMatchObject({ mode: "sealed", kmsKeyArn: OTHER_ARN });
    expect(kmsEndpointHost("arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")).toBe("kms.cn-north-1.amazonaws.com.cn");
  });

  it("hashes the exact bytes: whitespace changes the hash, so a client compares what it was served", () => {
    const a = trustPolicySha256(bytes(JSON.stringify(base())));
    const b = trustPolicySha256(bytes(JSON.stringify(base(), null, 2)));
    expect(a).toHaveLength(32);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  // One broken rule per row; production rules (dev: false) unless the row says otherwise.
  const refusals: [string, unknown, RegExp][] = [
    [
      "a first-party kind pointed at another origin",
      mutate((p) => ((p.providers as object[])[0] = { name: "openai", kind: "openai", baseUrl: "https://evil.example/v1" })),
      /fixed to https:\/\/api\.openai\.com/,
    ],
    ["a plain-http origin", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.baseUrl = "http://llm.acme.example/v1")), /must be https/],
    ["credentials in an origin", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.baseUrl = "https://u:p@llm.acme.example")), /credentials/],
    ["a query in an origin", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.baseUrl = "https://llm.acme.example/?x=1")), /query/],
    ["two providers sharing a secret", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.secret = "OPENAI_API_KEY")), /one secret serves one provider/],
    ["a hand-written egress list", mutate((p) => (p.egressAllowlist = ["evil.example:443"])), /unknown field/],
    ["client tokens (operations, not trust)", mutate((p) => (p.clients = [])), /unknown field/],
    ["an alias as the secrets key", mutate((p) => (p.secrets = { kmsKeyArn: "alias/egw" })), /full KMS key ARN/],
    ["an alias ARN as the secrets key", mutate((p) => (p.secrets = { kmsKeyArn: "arn:aws:kms:eu-west-1:111122223333:alias/egw" })), /full KMS key ARN/],
    ["a bare key id as the identity key", mutate((p) => (p.identity = { mode: "sealed", kmsKeyArn: "1234abcd-12ab-34cd-56ef-1234567890ab" })), /full KMS key ARN/],
    ["secrets without a key", mutate((p) => delete p.secrets), /secrets: is required/],
    ["a key with no secret to release", mutate((p) => ((p.providers = [{ name: "local", kind: "local" }]), (p.models = {}))), /no provider uses a secret/],
    ["no identity mode", mutate((p) => delete p.identity), /identity: is required/],
    ["an unknown identity mode", mutate((p) => (p.identity = { mode: "host-chosen" })), /ephemeral" or "sealed/],
    ["a generator PCR set without PCR2", mutate((p) => (p.identity = { mode: "sealed", kmsKeyArn: ARN, generatorPcrs: [{ 0: PCR, 1: PCR }] })), /exactly PCRs/],
    ["a local provider with a base URL", mutate((p) => ((p.providers as object[])[2] = { name: "local", kind: "local", baseUrl: "https://x.example" })), /only name and kind/],
    ["an unknown kind", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.kind = "mystery")), /must be one of/],
    ["an alias named after another provider", mutate((p) => (p.models = { "acme/gpt": { provider: "openai", model: "gpt-5" } })), /named after provider "acme"/],
    ["a route to no provider", mutate((p) => (p.models = { x: { provider: "nobody", model: "m" } })), /names no configured provider/],
    ["version 2", mutate((p) => (p.version = 2)), /version: must be 1/],
    [
      "a responses capability that is not a boolean",
      mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.capabilities = { responses: "yes" })),
      /capabilities\.responses/,
    ],
    [
      "capabilities on a first-party kind (openai always speaks Responses)",
      mutate((p) => ((p.providers as Record<string, unknown>[])[0]!.capabilities = { responses: false })),
      /only openai-compatible/,
    ],
    ["an unknown capability", mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.capabilities = { assistants: true })), /unknown field/],
  ];
  it.each(refusals)("refuses %s (ERR_TRUST_POLICY_INVALID)", (_name, policy, message) => {
    let caught: unknown;
    try {
      parse(policy);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: "ERR_TRUST_POLICY_INVALID" });
    expect((caught as Error).message).toMatch(message);
  });

  it("an openai-compatible provider may say it speaks the Responses API; the attested policy shows it", () => {
    const policy = parse(mutate((p) => ((p.providers as Record<string, unknown>[])[1]!.capabilities = { chat: true, responses: true })));
    expect(policy.providers[1]!.capabilities).toEqual({ chat: true, responses: true });
    expect(parse(base()).providers[1]!.capabilities).toBeUndefined();
  });

  it("in development only: a first-party kind at a local mock, and plain http", () => {
    const policy = mutate((p) => ((p.providers as object[])[0] = { name: "openai", kind: "openai", baseUrl: "http://127.0.0.1:9999/v1", secret: "OPENAI_API_KEY" }));
    expect(() => parse(policy, false)).toThrow(/fixed to/);
    expect(parse(policy, true).providers[0]!.origin).toBe("http://127.0.0.1:9999");
  });

  it("refuses repeated keys, non-UTF-8, non-JSON, oversized input, and an options object that does not say dev", () => {
    const text = JSON.stringify(base()).replace('"version":1', '"version":1,"version":1');
    expect(() => parseTrustPolicy(bytes(text), { dev: false })).toThrow(/appears twice/);
    expect(() => parseTrustPolicy(Uint8Array.of(0xff, 0xfe), { dev: false })).toThrow(/UTF-8/);
    expect(() => parseTrustPolicy(bytes("{"), { dev: false })).toThrow(/not JSON/);
    expect(() => parseTrustPolicy(new Uint8Array(256 * 1024 + 1), { dev: false })).toThrow(/at most/);
    expect(() => parseTrustPolicy(bytes(base()), {} as { dev: boolean })).toThrow(/dev must be said on purpose/);
  });
});
