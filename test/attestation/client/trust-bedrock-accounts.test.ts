import { describe, expect, it } from "vitest";
import { checkTrustConstraints } from "../../../attestation/client/trust-check.js";
import { describeTrustConstraints, readTrustSetting, trustJson, type TrustSetting } from "../../../attestation/client/trust-constraints.js";
import { ClientError } from "../../../attestation/client/errors.js";
import { trustFromPolicyFile } from "../../../attestation/manifest/create.js";
import { parseTrustPolicy, trustPolicySha256 } from "../../../attestation/trust-policy.js";

/**
 * A host writes its own trust policy whose Bedrock provider pins the host's
 * account: same origin (bedrock-runtime.<region>.amazonaws.com) as the
 * legitimate one, so `upstreamOrigins` alone would pass it, and the host's
 * account logging would see every prompt. The client refuses a policy with
 * a Bedrock provider unless its trust section names the allowed accounts
 * (or pins the exact policy).
 */
const ORIGIN = "https://bedrock-runtime.us-east-1.amazonaws.com";
const policy = (accountId: string) =>
  new TextEncoder().encode(JSON.stringify({ version: 1, providers: [{ name: "aws", kind: "bedrock", region: "us-east-1", accountId }], identity: { mode: "ephemeral" } }));
const check = (trust: TrustSetting, account: string) => {
  const b = policy(account);
  return checkTrustConstraints(parseTrustPolicy(b, { dev: false }), trustPolicySha256(b), trust);
};
const read = (v: unknown) => readTrustSetting(v, "json", (where, message) => new ClientError("ERR_POLICY_INVALID", `${where}: ${message}`));

describe("trust.awsAccounts", () => {
  it("the owner's account passes; the host's account with the same origin is refused", () => {
    const trust = read({ upstreamOrigins: [ORIGIN], awsAccounts: ["111122223333"] });
    expect(check(trust, "111122223333")).toContain("Bedrock accounts 111122223333 allowed");
    expect(() => check(trust, "444455556666")).toThrow(expect.objectContaining({ code: "ERR_TRUST_NOT_ALLOWED", message: expect.stringContaining("444455556666") }));
  });

  it("a section that constrains origins but not accounts refuses a policy with Bedrock (fail closed)", () => {
    expect(() => check(read({ upstreamOrigins: [ORIGIN] }), "111122223333")).toThrow(
      expect.objectContaining({ code: "ERR_TRUST_NOT_ALLOWED", message: expect.stringContaining("does not constrain Bedrock accounts") }),
    );
  });

  it("an exact policy hash pin covers it (the pinned bytes name the account)", () => {
    const b = policy("111122223333");
    expect(() => checkTrustConstraints(parseTrustPolicy(b, { dev: false }), trustPolicySha256(b), { policySha256: [trustPolicySha256(b)] })).not.toThrow();
  });

  it("egw manifest create --trust-policy derives awsAccounts, so the derived manifest accepts exactly the deployment's account", () => {
    const trust = trustFromPolicyFile(policy("111122223333"), { dev: false, pinHash: false });
    expect(trust).toMatchObject({ upstreamOrigins: [ORIGIN], awsAccounts: ["111122223333"] });
    expect(() => check(trust, "444455556666")).toThrow(expect.objectContaining({ code: "ERR_TRUST_NOT_ALLOWED" }));
  });

  it("parses strictly, round-trips and is described", () => {
    const trust = read({ awsAccounts: ["111122223333"] });
    expect(trustJson(trust)).toEqual({ awsAccounts: ["111122223333"] });
    expect(describeTrustConstraints(trust).join("\n")).toContain("Bedrock AWS accounts allowed: 111122223333");
    for (const bad of [[], ["1234"], [111122223333], ["111122223333", "111122223333"], "111122223333"]) {
      expect(() => read({ awsAccounts: bad }), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    }
  });
});
