/**
 * The checks on an attested trust policy: the served bytes against the
 * attested hash, the parse under production or development rules, each
 * constraint passing and failing with its code, and receipts' upstreams.
 */
import { describe, expect, it } from "vitest";
import type { ReceiptClaims } from "../../../attestation/receipt.js";
import { parseTrustPolicy, trustPolicySha256 } from "../../../attestation/trust-policy.js";
import { checkReceiptUpstream, checkServedTrustPolicy, checkTrustConstraints, type AttestedTrustPolicy } from "../../../attestation/client/trust-check.js";
import type { TrustConstraints, TrustSetting } from "../../../attestation/client/trust-constraints.js";

const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const HOST_ARN = "arn:aws:kms:eu-west-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab";

function policyJson(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    providers: [
      { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
      { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example/v1", secret: "ACME_KEY" },
      { name: "local", kind: "local" },
    ],
    models: { gpt: { provider: "openai", model: "gpt-5" } },
    secrets: { kmsKeyArn: ARN },
    identity: { mode: "ephemeral" },
    ...extra,
  };
}
const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const ALL = ["https://api.openai.com", "https://llm.acme.example", "local"];

function check(trust: TrustSetting, policy: Record<string, unknown> = policyJson()): string {
  const b = bytes(policy);
  return checkTrustConstraints(parseTrustPolicy(b, { dev: false }), trustPolicySha256(b), trust);
}
const refusedBy = (trust: TrustConstraints, constraint: string, policy?: Record<string, unknown>) =>
  expect(() => check(trust, policy)).toThrow(expect.objectContaining({ code: "ERR_TRUST_NOT_ALLOWED", action: "reject", message: expect.stringContaining(`${constraint}:`) }));

describe("checkTrustConstraints", () => {
  it("upstreamOrigins: every provider origin must be allowed; the refusal names the provider and its origin", () => {
    expect(check({ upstreamOrigins: ALL })).toContain("upstream origins");
    expect(check({ upstreamOrigins: [...ALL, "https://api.anthropic.com"] })).toContain("allowed");
    refusedBy({ upstreamOrigins: ["https://api.openai.com", "local"] }, "upstreamOrigins");
    expect(() => check({ upstreamOrigins: ["https://api.openai.com", "local"] })).toThrow(/provider "acme" sends to https:\/\/llm\.acme\.example/);
  });

  it("identity: the mode, and for a sealed identity the key ARN", () => {
    const sealed = policyJson({ identity: { mode: "sealed", kmsKeyArn: ARN } });
    expect(check({ identity: { mode: "ephemeral" } })).toContain("identity ephemeral");
    expect(check({ identity: { mode: "sealed", kmsKeyArn: ARN } }, sealed)).toContain(`sealed under ${ARN}`);
    refusedBy({ identity: { mode: "ephemeral" } }, "identity", sealed);
    refusedBy({ identity: { mode: "sealed", kmsKeyArn: ARN } }, "identity");
    // The host's own key for the identity: the attack of issue 11.
    refusedBy({ identity: { mode: "sealed", kmsKeyArn: ARN } }, "identity.kmsKeyArn", policyJson({ identity: { mode: "sealed", kmsKeyArn: HOST_ARN } }));
    expect(() => check({ identity: { mode: "sealed", kmsKeyArn: ARN } }, policyJson({ identity: { mode: "sealed", kmsKeyArn: HOST_ARN } }))).toThrow(HOST_ARN);
  });

  it("secretsKmsKeyArn: the key that releases provider keys; a policy with no secrets passes", () => {
    expect(check({ secretsKmsKeyArn: ARN })).toContain(`secrets key ${ARN}`);
    refusedBy({ secretsKmsKeyArn: ARN }, "secretsKmsKeyArn", policyJson({ secrets: { kmsKeyArn: HOST_ARN } }));
    const noSecrets = { version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } };
    expect(check({ secretsKmsKeyArn: ARN }, noSecrets)).toContain("no sealed secrets");
  });

  it("policySha256: the exact bytes, one of the pins", () => {
    const b = bytes(policyJson());
    expect(check({ policySha256: [new Uint8Array(32), trustPolicySha256(b)] })).toContain("pinned");
    refusedBy({ policySha256: [new Uint8Array(32)] }, "policySha256");
  });

  it("all constraints together; the first that fails is named", () => {
    const all: TrustConstraints = { upstreamOrigins: ALL, identity: { mode: "ephemeral" }, secretsKmsKeyArn: ARN };
    expect(() => check(all)).not.toThrow();
    refusedBy({ ...all, secretsKmsKeyArn: HOST_ARN }, "secretsKmsKeyArn");
  });

  it('"any" passes anything and says it constrained nothing', () => {
    expect(check("any", policyJson({ secrets: { kmsKeyArn: HOST_ARN }, identity: { mode: "sealed", kmsKeyArn: HOST_ARN } }))).toMatch(/^NOT constrained/);
  });
});

describe("checkServedTrustPolicy", () => {
  const good = bytes(policyJson());

  it("accepts bytes that hash to the attested value, and reports each step", () => {
    const { attested, steps } = checkServedTrustPolicy({ bytes: good, attestedSha256: trustPolicySha256(good), dev: false, trust: { upstreamOrigins: ALL } });
    expect(attested.origins).toEqual(ALL);
    expect(steps.map((s) => [s.step, s.status])).toEqual([
      ["trust-policy", "passed"],
      ["trust", "passed"],
    ]);
    const any = checkServedTrustPolicy({ bytes: good, attestedSha256: trustPolicySha256(good), dev: false, trust: "any" });
    expect(any.steps[1]).toMatchObject({ step: "trust", status: "not-requested" });
  });

  it("a policy other than the attested one is ERR_TRUST_POLICY_MISMATCH, whatever it says", () => {
    // The host serves a policy that would pass, the document attests another.
    const other = bytes(policyJson({ prefixRouting: false }));
    expect(() => checkServedTrustPolicy({ bytes: other, attestedSha256: trustPolicySha256(good), dev: false, trust: "any" })).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_POLICY_MISMATCH", action: "reject" }),
    );
    expect(() => checkServedTrustPolicy({ bytes: new Uint8Array(), attestedSha256: trustPolicySha256(good), dev: false, trust: "any" })).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_POLICY_MISMATCH" }),
    );
  });

  it("attested bytes that are no valid policy are ERR_TRUST_POLICY_INVALID", () => {
    for (const junk of [new TextEncoder().encode("{"), bytes({ version: 2 }), bytes([]), new Uint8Array([0xff, 0xfe])]) {
      expect(() => checkServedTrustPolicy({ bytes: junk, attestedSha256: trustPolicySha256(junk), dev: false, trust: "any" })).toThrow(
        expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID" }),
      );
    }
  });

  it("development rules only under a development root: http origins and first-party overrides", () => {
    const devPolicy = bytes({
      version: 1,
      providers: [
        { name: "mock", kind: "openai-compatible", baseUrl: "http://127.0.0.1:9999/v1" },
        { name: "openai", kind: "openai", baseUrl: "http://127.0.0.1:9998/v1" },
      ],
      identity: { mode: "ephemeral" },
    });
    const args = { bytes: devPolicy, attestedSha256: trustPolicySha256(devPolicy), trust: { upstreamOrigins: ["http://127.0.0.1:9999", "http://127.0.0.1:9998"] } };
    expect(checkServedTrustPolicy({ ...args, dev: true }).attested.origins).toEqual(["http://127.0.0.1:9998", "http://127.0.0.1:9999"]);
    expect(() => checkServedTrustPolicy({ ...args, dev: false })).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_POLICY_INVALID", message: expect.stringContaining("production rules") }),
    );
  });
});

describe("checkReceiptUpstream", () => {
  const b = bytes(policyJson());
  const attested = (constraints: TrustSetting): AttestedTrustPolicy =>
    checkServedTrustPolicy({ bytes: b, attestedSha256: trustPolicySha256(b), dev: false, trust: constraints }).attested;
  const claims = (origin?: string) => ({ upstream: origin === undefined ? undefined : { origin } }) as unknown as ReceiptClaims;

  it("an origin of one of the attested providers passes; no upstream (a refusal) passes", () => {
    expect(() => checkReceiptUpstream(claims("https://llm.acme.example"), attested("any"))).not.toThrow();
    expect(() => checkReceiptUpstream(claims("local"), attested({ upstreamOrigins: ALL }))).not.toThrow();
    expect(() => checkReceiptUpstream(claims(), attested({ upstreamOrigins: ALL }))).not.toThrow();
  });

  it('an origin no attested provider uses is ERR_RECEIPT_UPSTREAM_NOT_ALLOWED, even under trust "any"', () => {
    for (const origin of ["https://evil.example", "https://api.openai.com.evil.example", "http://api.openai.com", ""]) {
      expect(() => checkReceiptUpstream(claims(origin), attested("any")), origin).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED", action: "reject" }));
    }
  });

  it("an attested origin outside the allowed ones is refused too", () => {
    // Stands for a constraint set narrower than the policy (checked at connect time too).
    const narrowed = { ...attested({ upstreamOrigins: ALL }), constraints: { upstreamOrigins: ["local"] } };
    expect(() => checkReceiptUpstream(claims("https://api.openai.com"), narrowed)).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED", message: expect.stringContaining("not an allowed") }),
    );
  });

  it('no attested policy (v1/v2 document, trust "any"): nothing to hold the receipt to', () => {
    expect(() => checkReceiptUpstream(claims("https://evil.example"), null)).not.toThrow();
  });
});
