import { Match, Template } from "aws-cdk-lib/assertions";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { afterAll, describe, expect, it, vi } from "vitest";
import { DeployError } from "../../../../infra/deploy/aws/errors.js";
import { KeyStack, type KeyStackProps } from "../../../../infra/deploy/aws/key-stack.js";
import { ADMIN, MANIFEST, manifestJson, PCR0, PCR0_NEXT, PCR1, PCR2, synthStacks, testApp, warningsOf, ZERO, removeTestFiles } from "./fixtures.js";
import { allStatements, coversAction, coversDecrypt, decryptViolations, requiresAttestation, type Statement } from "./policy-walk.js";

// Synthesizing a stack takes seconds on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
afterAll(removeTestFiles);

type KeyResource = { Properties: { KeyPolicy: { Statement: Statement[] } } };

function keyStack(props: Partial<KeyStackProps> = {}): KeyStack {
  return new KeyStack(testApp(), "EgwKey", { manifestJson: MANIFEST, adminArn: ADMIN, ...props });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof DeployError ? err.code : `not a DeployError: ${String(err)}`;
  }
  return undefined;
}

describe("KMS key stack: key policy from the manifest", () => {
  // One synth of both stacks: the enclave stack adds the artifact-read policy to the same role.
  const { key: stack, keyTemplate, enclaveTemplate } = synthStacks();
  const keys = keyTemplate.findResources("AWS::KMS::Key") as Record<string, KeyResource>;
  const [keyId, key] = Object.entries(keys)[0]!;
  const statements = key.Properties.KeyPolicy.Statement;
  const roleId = Object.keys(keyTemplate.findResources("AWS::IAM::Role"))[0]!;

  it("has exactly one key, retained, with rotation on", () => {
    expect(Object.keys(keys)).toHaveLength(1);
    keyTemplate.hasResource("AWS::KMS::Key", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain", Properties: Match.objectLike({ EnableKeyRotation: true }) });
  });

  it("no IAM or key-policy statement in either stack allows kms:Decrypt without a recipient attestation", () => {
    const walked = allStatements({ key: keyTemplate, enclave: enclaveTemplate });
    // The walk saw the key policy, the decrypt policy and the artifact-read policy.
    expect(walked.filter((f) => f.kind === "key-policy").length).toBeGreaterThanOrEqual(5);
    expect(walked.filter((f) => f.kind === "identity-policy").length).toBeGreaterThanOrEqual(2);
    expect(decryptViolations({ key: keyTemplate, enclave: enclaveTemplate })).toEqual([]);
  });

  it("carries the explicit Deny of kms:Decrypt without attestation, for every principal, and denies ReEncrypt", () => {
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: "Deny",
        Principal: "*",
        Action: "kms:Decrypt",
        Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } },
      }),
    );
    // ReEncryptFrom would move a sealed secret under a key the caller controls, attestation-free.
    const reEncryptDenied = statements.filter((s) => s.Effect === "Deny" && s.Principal === "*" && s.Condition === undefined && coversAction(s, "kms:ReEncryptFrom"));
    expect(reEncryptDenied.length).toBeGreaterThanOrEqual(1);
  });

  it("names every statement with a distinct Sid", () => {
    const sids = statements.map((s) => s.Sid);
    expect(sids.every((sid) => typeof sid === "string" && sid !== "")).toBe(true);
    expect(new Set(sids).size).toBe(sids.length);
  });

  it("puts exactly the manifest's PCRs in the conditions, one Allow per measurement set, for the parent role only", () => {
    const allows = statements.filter((s) => s.Effect === "Allow" && coversDecrypt(s));
    expect(allows.map((s) => s.Condition)).toEqual([
      { StringEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": PCR0, "kms:RecipientAttestation:PCR1": PCR1, "kms:RecipientAttestation:PCR2": PCR2 } },
      { StringEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": PCR0_NEXT, "kms:RecipientAttestation:PCR1": PCR1, "kms:RecipientAttestation:PCR2": PCR2 } },
    ]);
    for (const s of allows) expect(s.Principal).toEqual({ AWS: { "Fn::GetAtt": [roleId, "Arn"] } });
  });

  it("has no statement CDK would add by itself (root kms:*), and the admin gets administration and Encrypt only", () => {
    for (const s of statements.filter((s) => s.Effect === "Allow")) {
      expect([s.Action].flat()).not.toContain("kms:*");
    }
    const adminActions = statements.filter((s) => JSON.stringify(s.Principal) === JSON.stringify({ AWS: ADMIN })).flatMap((s) => [s.Action].flat());
    expect(adminActions).toContain("kms:Put*");
    expect(adminActions).toContain("kms:Encrypt");
    expect(adminActions.filter((a) => coversDecrypt({ Action: a }))).toEqual([]);
  });

  it("gives the role kms:Decrypt on this key only, with an attestation required", () => {
    keyTemplate.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: [
          { Action: "kms:Decrypt", Effect: "Allow", Resource: { "Fn::GetAtt": [keyId, "Arn"] }, Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "false" } } },
        ],
      },
    });
  });

  it("passes the key-policy warnings (PutKeyPolicy, grants) on as synth warnings", () => {
    const warnings = warningsOf(stack);
    expect(warnings.some((w) => /kms:PutKeyPolicy/.test(w))).toBe(true);
    expect(warnings.some((w) => /kms:CreateGrant/.test(w))).toBe(true);
  });
});

describe("the decrypt walk can fail", () => {
  it("flags an Allow of kms:Decrypt on * without condition added to the role", () => {
    const stack = keyStack();
    stack.role.addToPrincipalPolicy(new PolicyStatement({ sid: "Leak", actions: ["kms:Decrypt"], resources: ["*"] }));
    expect(decryptViolations({ key: Template.fromStack(stack) })).toEqual([expect.stringMatching(/Leak$/)]);
  });

  it("flags wildcards, NotAction, IfExists and Null=true; accepts attestation conditions", () => {
    const attested = { StringEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": PCR0 } };
    expect(coversDecrypt({ Action: "kms:*" })).toBe(true);
    expect(coversDecrypt({ Action: "*" })).toBe(true);
    expect(coversDecrypt({ Action: ["kms:Decr?pt"] })).toBe(true);
    expect(coversDecrypt({ NotAction: "s3:*" })).toBe(true);
    expect(coversDecrypt({ NotAction: "kms:*" })).toBe(false);
    expect(coversDecrypt({ Action: "kms:Encrypt" })).toBe(false);
    expect(requiresAttestation({ Condition: attested })).toBe(true);
    expect(requiresAttestation({ Condition: { StringEqualsIgnoreCaseIfExists: attested.StringEqualsIgnoreCase } })).toBe(false);
    expect(requiresAttestation({ Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } } })).toBe(false);
    expect(requiresAttestation({ Condition: { StringEquals: { "aws:PrincipalTag/x": "y" } } })).toBe(false);
  });

  it("flags an identity policy with an attestation condition but on every key", () => {
    const stack = keyStack();
    stack.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "AnyKey",
        actions: ["kms:Decrypt"],
        resources: ["*"],
        conditions: { Null: { "kms:RecipientAttestation:ImageSha384": "false" } },
      }),
    );
    expect(decryptViolations({ key: Template.fromStack(stack) })).toEqual([expect.stringMatching(/AnyKey$/)]);
  });
});

describe("KMS key stack: refusals", () => {
  it("refuses a debug measurement (PCR0 all zero) unless allowDebug", () => {
    const debug = manifestJson([{ label: "debug", pcrs: { 0: ZERO, 1: ZERO, 2: ZERO } }]);
    expect(codeOf(() => keyStack({ manifestJson: debug }))).toBe("ERR_DEPLOY_DEBUG_MEASUREMENT");
    expect(codeOf(() => keyStack({ manifestJson: manifestJson([{ label: "p", pcrs: { 0: PCR0, 2: ZERO } }]) }))).toBe("ERR_DEPLOY_DEBUG_MEASUREMENT");
    expect(codeOf(() => keyStack({ manifestJson: manifestJson([{ label: "p", pcrs: { 0: PCR0 } }], { allowDebug: true }) }))).toBe("ERR_DEPLOY_DEBUG_MEASUREMENT");

    const allowed = keyStack({ manifestJson: debug, allowDebug: true });
    const policy = Object.values(Template.fromStack(allowed).findResources("AWS::KMS::Key"))[0] as KeyResource;
    expect(policy.Properties.KeyPolicy.Statement.some((s) => JSON.stringify(s.Condition ?? {}).includes(ZERO))).toBe(true);
    expect(warningsOf(allowed).some((w) => /debug-mode enclaves/.test(w))).toBe(true);
  });

  it("refuses a measurement set without PCR0 unless allowUnpinnedImage", () => {
    const signerOnly = manifestJson([{ label: "signed", pcrs: { 8: PCR1 } }]);
    expect(codeOf(() => keyStack({ manifestJson: signerOnly }))).toBe("ERR_DEPLOY_IMAGE_NOT_PINNED");
    expect(codeOf(() => keyStack({ manifestJson: signerOnly, allowUnpinnedImage: true }))).toBeUndefined();
  });

  it("turns an invalid manifest into ERR_DEPLOY_MANIFEST with the parser's error as cause", () => {
    for (const bad of [
      "",
      "{",
      "[]",
      manifestJson([]),
      manifestJson([{ label: "x", pcrs: { 0: "ab" } }]),
      JSON.stringify({ version: 2, measurements: [{ label: "x", pcrs: { 0: PCR0 } }], trust: "any" }),
      manifestJson([{ label: "x", pcrs: { 0: PCR0 } }], { extra: 1 }),
    ]) {
      let caught: unknown;
      try {
        keyStack({ manifestJson: bad });
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(DeployError);
      expect((caught as DeployError).code).toBe("ERR_DEPLOY_MANIFEST");
      expect(((caught as DeployError).cause as { code?: string }).code).toBe("ERR_MANIFEST_INVALID");
    }
  });

  it("turns buildKeyPolicy's refusals into ERR_DEPLOY_KEY_POLICY: PCRs KMS has no condition for, bad ARNs", () => {
    expect(codeOf(() => keyStack({ manifestJson: manifestJson([{ label: "x", pcrs: { 0: PCR0, 5: PCR1 } }]) }))).toBe("ERR_DEPLOY_KEY_POLICY");
    expect(codeOf(() => keyStack({ adminArn: "*" }))).toBe("ERR_DEPLOY_KEY_POLICY");
    expect(codeOf(() => keyStack({ sealerArn: "arn:aws:iam::111122223333:role/x y" }))).toBe("ERR_DEPLOY_KEY_POLICY");
  });

  it("refuses a reserved or malformed key alias", () => {
    expect(codeOf(() => keyStack({ keyAlias: "alias/aws/egw" }))).toBe("ERR_DEPLOY_PROPS");
    expect(codeOf(() => keyStack({ keyAlias: "egw" }))).toBe("ERR_DEPLOY_PROPS");
    Template.fromStack(keyStack({ keyAlias: "alias/egw" })).hasResourceProperties("AWS::KMS::Alias", { AliasName: "alias/egw" });
  });
});
