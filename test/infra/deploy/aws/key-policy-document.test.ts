import { describe, expect, it, vi } from "vitest";
import { parseManifest } from "../../../../attestation/client/policy.js";

// The shared policy as it may look before or after it learned to deny ReEncrypt.
const shared = vi.hoisted(() => ({ extra: [] as Record<string, unknown>[] }));
vi.mock("../../../../infra/review/kms/key-policy.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../../../infra/review/kms/key-policy.js")>();
  return {
    ...real,
    buildKeyPolicy: (input: Parameters<typeof real.buildKeyPolicy>[0]) => {
      const built = real.buildKeyPolicy(input);
      const statements = (built.policy.Statement as Record<string, unknown>[]).filter((s) => ![s.Action].flat().some((a) => String(a).startsWith("kms:ReEncrypt")));
      return { ...built, policy: { ...built.policy, Statement: [...statements, ...shared.extra] } };
    },
  };
});

const { keyPolicyDocument } = await import("../../../../infra/deploy/aws/key-policy-document.js");

const manifest = parseManifest(JSON.stringify({ version: 1, measurements: [{ label: "v1", pcrs: { 0: "ab".repeat(48) } }], trust: "any" }));
const input = { manifest, roleArn: "${Token[ROLE]}", adminArn: "arn:aws:iam::111122223333:root" };
const reEncryptDenies = (statements: Record<string, unknown>[]) =>
  statements.filter((s) => s.Effect === "Deny" && [s.Action].flat().some((a) => String(a).startsWith("kms:ReEncrypt")));

describe("keyPolicyDocument", () => {
  it("adds a Deny of kms:ReEncryptFrom when the shared policy has none", () => {
    shared.extra = [];
    expect(reEncryptDenies(keyPolicyDocument(input).policy.Statement)).toEqual([
      { Sid: "DenyReEncryptFromThisKey", Effect: "Deny", Principal: "*", Action: "kms:ReEncryptFrom", Resource: "*" },
    ]);
  });

  it("adds nothing when the shared policy already denies it to everyone, unconditionally", () => {
    shared.extra = [{ Sid: "DenyReEncrypt", Effect: "Deny", Principal: "*", Action: ["kms:ReEncrypt*"], Resource: "*" }];
    expect(reEncryptDenies(keyPolicyDocument(input).policy.Statement)).toHaveLength(1);
    // A conditional Deny does not count.
    shared.extra = [{ Sid: "Partial", Effect: "Deny", Principal: "*", Action: "kms:ReEncryptFrom", Resource: "*", Condition: { Bool: { "aws:SecureTransport": "false" } } }];
    expect(reEncryptDenies(keyPolicyDocument(input).policy.Statement).map((s) => s.Sid)).toEqual(["Partial", "DenyReEncryptFromThisKey"]);
  });

  it("puts the role ARN where the placeholder was, and nowhere else", () => {
    shared.extra = [];
    const { policy } = keyPolicyDocument(input);
    const text = JSON.stringify(policy);
    expect(text).not.toMatch(/000000000000/);
    const withRole = policy.Statement.filter((s) => JSON.stringify(s.Principal) === JSON.stringify({ AWS: "${Token[ROLE]}" }));
    expect(withRole.map((s) => s.Sid)).toEqual(["EnclaveDecrypt1"]);
  });

  it("refuses a policy KMS would reject for its size", () => {
    const sets = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        label: `build ${i}`,
        pcrs: { 0: i.toString(16).padStart(96, "1"), 1: "cd".repeat(48), 2: "ef".repeat(48) },
      }));
    const big = parseManifest(JSON.stringify({ version: 1, measurements: sets(64), trust: "any" }));
    expect(() => keyPolicyDocument({ ...input, manifest: big })).toThrow(expect.objectContaining({ code: "ERR_DEPLOY_KEY_POLICY" }));
    const fits = parseManifest(JSON.stringify({ version: 1, measurements: sets(30), trust: "any" }));
    expect(keyPolicyDocument({ ...input, manifest: fits }).policy.Statement.length).toBeGreaterThan(30);
  });
});
