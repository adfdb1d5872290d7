import { describe, expect, it } from "vitest";
import { parseManifest } from "../../../attestation/client/policy.js";
import { buildKeyPolicy, KeyPolicyError } from "../../../infra/kms/key-policy.js";

const PCR0 = "ab".repeat(48);
const PCR1 = "cd".repeat(48);
const PCR2 = "ef".repeat(48);
const ROLE = "arn:aws:iam::111122223333:role/egw-parent";
const ADMIN = "arn:aws:iam::111122223333:role/kms-admin";

const manifest = (measurements: unknown, extra: Record<string, unknown> = {}) => parseManifest(JSON.stringify({ version: 1, measurements, ...extra }));

type Statement = { Sid: string; Effect: string; Principal: unknown; Action: string | string[]; Condition?: Record<string, Record<string, string>> };

describe("KMS key policy from a measurements manifest", () => {
  const { policy, warnings } = buildKeyPolicy({
    manifest: manifest([
      { label: "v1", pcrs: { 0: PCR0, 1: PCR1, 2: PCR2 } },
      { label: "v2", pcrs: { 0: PCR1 } },
    ]),
    enclaveRoleArn: ROLE,
    adminArn: ADMIN,
  });
  const statements = (policy as { Statement: Statement[] }).Statement;
  const decryptAllows = statements.filter((s) => s.Effect === "Allow" && ([] as string[]).concat(s.Action).includes("kms:Decrypt"));

  it("allows kms:Decrypt only with attestation conditions from the manifest, one statement per measurement set", () => {
    expect(decryptAllows).toHaveLength(2);
    expect(decryptAllows[0]!.Principal).toEqual({ AWS: ROLE });
    expect(decryptAllows[0]!.Condition).toEqual({
      StringEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": PCR0, "kms:RecipientAttestation:PCR1": PCR1, "kms:RecipientAttestation:PCR2": PCR2 },
    });
    expect(decryptAllows[1]!.Condition).toEqual({ StringEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": PCR1 } });
    // No statement allows Decrypt without a recipient-attestation condition.
    for (const s of statements.filter((s) => s.Effect === "Allow")) {
      const actions = ([] as string[]).concat(s.Action);
      if (actions.some((a) => a === "kms:Decrypt" || a === "kms:*" || a === "kms:Decrypt*")) {
        expect(Object.keys(s.Condition?.StringEqualsIgnoreCase ?? {}).some((k) => k.startsWith("kms:RecipientAttestation:"))).toBe(true);
      }
    }
  });

  it("denies kms:Decrypt without a recipient attestation to every principal", () => {
    const deny = statements.find((s) => s.Effect === "Deny")!;
    expect(deny).toMatchObject({ Principal: "*", Action: "kms:Decrypt", Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } } });
  });

  it("lets the enclave make data keys only with attestation, and denies data keys without it to everyone", () => {
    for (const allow of decryptAllows) expect(allow.Action).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
    const deny = statements.find((s) => s.Sid === "DenyDataKeyWithoutAttestation")!;
    expect(deny).toMatchObject({ Effect: "Deny", Principal: "*", Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } } });
    expect(deny.Action).toEqual(expect.arrayContaining(["kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext"]));
    // No Allow anywhere grants a data key without the attestation condition.
    for (const s of statements.filter((s) => s.Effect === "Allow")) {
      const actions = ([] as string[]).concat(s.Action);
      if (actions.some((a) => a.startsWith("kms:GenerateDataKey") || a === "kms:Generate*" || a === "kms:*")) {
        expect(Object.keys(s.Condition?.StringEqualsIgnoreCase ?? {}).some((k) => k.startsWith("kms:RecipientAttestation:"))).toBe(true);
      }
    }
  });

  it("denies Encrypt and ReEncrypt under the identity encryption context, and ReEncrypt altogether", async () => {
    const { IDENTITY_ENCRYPTION_CONTEXT } = await import("../../../enclave/secrets/identity-blob.js");
    const identity = statements.find((s) => s.Sid === "DenyIdentityOutsideEnclave")!;
    const [[key, value]] = Object.entries(IDENTITY_ENCRYPTION_CONTEXT) as [[string, string]];
    expect(identity).toMatchObject({ Effect: "Deny", Principal: "*", Condition: { StringEquals: { [`kms:EncryptionContext:${key}`]: value } } });
    expect(identity.Action).toEqual(expect.arrayContaining(["kms:Encrypt", "kms:ReEncrypt*"]));
    const reencrypt = statements.find((s) => s.Sid === "DenyReEncrypt")!;
    expect(reencrypt).toMatchObject({ Effect: "Deny", Principal: "*", Action: ["kms:ReEncryptFrom", "kms:ReEncryptTo"] });
    expect(reencrypt.Condition).toBeUndefined();
    // The sealer's Encrypt Allow carries no condition, so only the Deny keeps identity blobs out of its reach.
    expect(statements.find((s) => s.Sid === "SealSecrets")).toMatchObject({ Effect: "Allow", Action: "kms:Encrypt" });
  });

  it("warns about what could undo the condition: PutKeyPolicy and grants", () => {
    expect(warnings.join("\n")).toMatch(/PutKeyPolicy/);
    expect(warnings.join("\n")).toMatch(/CreateGrant/);
  });

  it("warns about debug-mode measurements and sets without PCR0; refuses PCRs KMS cannot condition on", () => {
    const w = buildKeyPolicy({ manifest: manifest([{ label: "dbg", pcrs: { 0: "00".repeat(48) } }, { label: "no-image", pcrs: { 1: PCR1 } }], { allowDebug: true }), enclaveRoleArn: ROLE, adminArn: ADMIN }).warnings.join("\n");
    expect(w).toMatch(/debug-mode enclave/);
    expect(w).toMatch(/does not pin PCR0/);
    expect(w).toMatch(/allows debug mode/);
    expect(() => buildKeyPolicy({ manifest: manifest([{ label: "x", pcrs: { 15: PCR0 } }]), enclaveRoleArn: ROLE, adminArn: ADMIN })).toThrow(KeyPolicyError);
  });

  it("refuses principals that are not IAM ARNs", () => {
    expect(() => buildKeyPolicy({ manifest: manifest([{ label: "v", pcrs: { 0: PCR0 } }]), enclaveRoleArn: "*", adminArn: ADMIN })).toThrow(/IAM ARN/);
  });
});
