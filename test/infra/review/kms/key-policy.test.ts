import { describe, expect, it } from "vitest";
import { parseManifest } from "../../../../attestation/client/policy.js";
import { IDENTITY_ENCRYPTION_CONTEXT } from "../../../../enclave/secrets/identity-blob.js";
import { providerSecretContext } from "../../../../enclave/secrets/secret-context.js";
import { buildKeyPolicy, KEY_RELEASE_ACTIONS, KeyPolicyError, POLICY_CHANGE_ACTIONS, type KeyPolicyInput } from "../../../../infra/review/kms/key-policy.js";
import { coversAction, type Statement } from "../../deploy/aws/policy-walk.js";
import { evaluate, type KmsRequest, type Outcome } from "./policy-eval.js";

const h = (byte: string) => byte.repeat(48);
const V1 = { 0: h("a0"), 1: h("a1"), 2: h("a2") };
const V2 = { 0: h("b0"), 1: h("b1"), 2: h("b2") };
const OTHER = { 0: h("c0"), 1: h("c1"), 2: h("c2") };
const ROLE = "arn:aws:iam::111122223333:role/egw-parent";
const ADMIN = "arn:aws:iam::111122223333:role/kms-admin";
const SEALER = "arn:aws:iam::111122223333:role/sealer";
const STRANGER = "arn:aws:iam::444455556666:root";
const OPENAI = "https://api.openai.com";
const ANTHROPIC = "https://api.anthropic.com";
const SECRETS = [
  { name: "OPENAI_API_KEY", origin: OPENAI },
  { name: "ANTHROPIC_API_KEY", origin: ANTHROPIC },
  { name: "OPENAI_ORG_KEY", origin: `${OPENAI}/` },
];

const manifest = (measurements: unknown, extra: Record<string, unknown> = {}) => parseManifest(JSON.stringify({ version: 1, measurements, trust: "any", ...extra }));
const TWO_SETS = manifest([
  { label: "v1", pcrs: V1 },
  { label: "v2", pcrs: V2 },
]);
const build = (over: Partial<KeyPolicyInput> = {}) => buildKeyPolicy({ manifest: TWO_SETS, enclaveRoleArn: ROLE, adminArn: ADMIN, sealerArn: SEALER, ...over });
const statementsOf = (over: Partial<KeyPolicyInput> = {}) => build(over).policy.Statement as unknown as Statement[];
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof KeyPolicyError ? err.code : `not a KeyPolicyError: ${String(err)}`;
  }
  return undefined;
};

const secret = (name: string, origin: string) => ({ ...providerSecretContext(name, origin) });
const identity = { ...IDENTITY_ENCRYPTION_CONTEXT };
/** What a grant, or an IAM policy if the key trusted IAM, would add: only the Denies stand in its way. */
const ROGUE_ALLOW: Statement = { Sid: "RogueAllow", Effect: "Allow", Principal: { AWS: "*" }, Action: "kms:*", Resource: "*" };

type Row = [what: string, req: KmsRequest, plain: Outcome, bound: Outcome, withRogueAllow: Outcome];
// Outcomes: without --secret, with --secret (SECRETS), and with --secret plus a rogue unconditional Allow.
const ROWS: Row[] = [
  ["v1 opens its OpenAI key", { principal: ROLE, action: "kms:Decrypt", pcrs: V1, context: secret("OPENAI_API_KEY", OPENAI) }, "allow", "allow", "allow"],
  ["v2 opens the Anthropic key", { principal: ROLE, action: "kms:Decrypt", pcrs: V2, context: secret("ANTHROPIC_API_KEY", ANTHROPIC) }, "allow", "allow", "allow"],
  ["two names for one origin", { principal: ROLE, action: "kms:Decrypt", pcrs: V2, context: secret("OPENAI_ORG_KEY", OPENAI) }, "allow", "allow", "allow"],
  [
    "PCRs in upper-case hex",
    { principal: ROLE, action: "kms:Decrypt", pcrs: { 0: V1[0].toUpperCase(), 1: V1[1], 2: V1[2] }, context: secret("OPENAI_API_KEY", OPENAI) },
    "allow",
    "allow",
    "allow",
  ],
  ["another image's attestation", { principal: ROLE, action: "kms:Decrypt", pcrs: OTHER, context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["v1's PCR0 with another PCR2", { principal: ROLE, action: "kms:Decrypt", pcrs: { ...V1, 2: h("c2") }, context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["an attestation without PCR1", { principal: ROLE, action: "kms:Decrypt", pcrs: { 0: V1[0], 2: V1[2] }, context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["no attestation", { principal: ROLE, action: "kms:Decrypt", context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["no attestation, no context", { principal: ROLE, action: "kms:Decrypt" }, "deny", "deny", "deny"],
  [
    "the OpenAI key for an attacker's origin",
    { principal: ROLE, action: "kms:Decrypt", pcrs: V1, context: secret("OPENAI_API_KEY", "https://attacker.example") },
    "allow",
    "implicit-deny",
    "allow",
  ],
  [
    "the OpenAI key for the Anthropic origin",
    { principal: ROLE, action: "kms:Decrypt", pcrs: V1, context: secret("OPENAI_API_KEY", ANTHROPIC) },
    "allow",
    "implicit-deny",
    "allow",
  ],
  ["an unlisted secret", { principal: ROLE, action: "kms:Decrypt", pcrs: V1, context: secret("OTHER_KEY", OPENAI) }, "allow", "implicit-deny", "allow"],
  ["a ciphertext with no context", { principal: ROLE, action: "kms:Decrypt", pcrs: V1 }, "allow", "implicit-deny", "allow"],
  ["v1 opens the shared identity", { principal: ROLE, action: "kms:Decrypt", pcrs: V1, context: identity }, "allow", "allow", "allow"],
  ["v2 makes an identity data key", { principal: ROLE, action: "kms:GenerateDataKey", pcrs: V2, context: identity }, "allow", "allow", "allow"],
  [
    "a data key under a provider context",
    { principal: ROLE, action: "kms:GenerateDataKey", pcrs: V1, context: secret("OPENAI_API_KEY", OPENAI) },
    "allow",
    "implicit-deny",
    "allow",
  ],
  ["another image makes an identity data key", { principal: ROLE, action: "kms:GenerateDataKey", pcrs: OTHER, context: identity }, "deny", "deny", "deny"],
  ["a data key without attestation", { principal: ROLE, action: "kms:GenerateDataKey", context: identity }, "deny", "deny", "deny"],
  ["a data key without plaintext (cannot carry Recipient)", { principal: ROLE, action: "kms:GenerateDataKeyWithoutPlaintext", context: identity }, "deny", "deny", "deny"],
  ["a data key pair for another image", { principal: ROLE, action: "kms:GenerateDataKeyPair", pcrs: OTHER }, "deny", "deny", "deny"],
  ["the admin decrypts", { principal: ADMIN, action: "kms:Decrypt", context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  [
    "the admin decrypts with v1's attestation",
    { principal: ADMIN, action: "kms:Decrypt", pcrs: V1, context: secret("OPENAI_API_KEY", OPENAI) },
    "implicit-deny",
    "implicit-deny",
    "allow",
  ],
  [
    "a stranger with v1's attestation",
    { principal: STRANGER, action: "kms:Decrypt", pcrs: V1, context: secret("OPENAI_API_KEY", OPENAI) },
    "implicit-deny",
    "implicit-deny",
    "allow",
  ],
  ["the sealer seals a provider key", { principal: SEALER, action: "kms:Encrypt", context: secret("OPENAI_API_KEY", OPENAI) }, "allow", "allow", "allow"],
  ["the sealer makes an identity blob", { principal: SEALER, action: "kms:Encrypt", context: identity }, "deny", "deny", "deny"],
  ["the sealer decrypts", { principal: SEALER, action: "kms:Decrypt", context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["ReEncryptFrom to lift a secret", { principal: ADMIN, action: "kms:ReEncryptFrom", context: secret("OPENAI_API_KEY", OPENAI) }, "deny", "deny", "deny"],
  ["the admin rewrites the policy (mutable)", { principal: ADMIN, action: "kms:PutKeyPolicy" }, "allow", "allow", "allow"],
];

describe("buildKeyPolicy: requests evaluated against the policy", () => {
  const plain = statementsOf();
  const bound = statementsOf({ secrets: SECRETS });
  it.each(ROWS)("%s", (_what, req, expectPlain, expectBound, expectRogue) => {
    expect(evaluate(plain, req)).toBe(expectPlain);
    expect(evaluate(bound, req)).toBe(expectBound);
    expect(evaluate([...bound, ROGUE_ALLOW], req)).toBe(expectRogue);
  });

  it("the Denies alone (with a rogue Allow) still refuse every measurement outside the manifest, for every release action", () => {
    for (const action of KEY_RELEASE_ACTIONS) {
      for (const pcrs of [OTHER, { ...V1, 0: h("c0") }, { ...V1, 1: h("c1") }, { ...V2, 2: h("c2") }, { 0: h("00"), 1: h("00"), 2: h("00") }, undefined]) {
        expect(evaluate([...bound, ROGUE_ALLOW], { principal: STRANGER, action, ...(pcrs && { pcrs }) }), `${action} ${JSON.stringify(pcrs)}`).toBe("deny");
      }
    }
  });

  it("immutable: PutKeyPolicy, CreateGrant and ReplicateKey are denied to everyone, even with a rogue Allow", () => {
    const immutable = statementsOf({ secrets: SECRETS, immutable: true });
    for (const action of POLICY_CHANGE_ACTIONS) {
      for (const principal of [ADMIN, SEALER, ROLE, STRANGER, "arn:aws:iam::111122223333:root"]) {
        expect(evaluate([...immutable, ROGUE_ALLOW], { principal, action }), `${principal} ${action}`).toBe("deny");
      }
      expect(evaluate(plain, { principal: ADMIN, action })).toBe(action === "kms:ReplicateKey" ? "implicit-deny" : "allow");
    }
    // Releases work as before; the admin can still retire the key.
    expect(evaluate(immutable, ROWS[0]![1])).toBe("allow");
    expect(evaluate(immutable, { principal: ADMIN, action: "kms:ScheduleKeyDeletion" })).toBe("allow");
    expect(evaluate(immutable, { principal: ADMIN, action: "kms:DisableKey" })).toBe("allow");
  });
});

describe("buildKeyPolicy: statement walk", () => {
  const setConditions = [V1, V2].map((pcrs) => Object.fromEntries(Object.entries(pcrs).map(([i, v]) => [`kms:RecipientAttestation:PCR${i}`, v])));

  it.each([
    ["without --secret", {}],
    ["with --secret", { secrets: SECRETS }],
    ["immutable, with --secret", { secrets: SECRETS, immutable: true }],
  ] as const)("%s: every Allow of a release action carries one set's exact PCR equality, for the role only", (_what, over) => {
    const statements = statementsOf(over);
    const releasing = statements.filter((s) => s.Effect === "Allow" && KEY_RELEASE_ACTIONS.some((a) => coversAction(s, a)));
    expect(releasing.length).toBeGreaterThanOrEqual(2);
    for (const s of releasing) {
      expect(s.Principal).toEqual({ AWS: ROLE });
      expect(setConditions).toContainEqual(s.Condition?.StringEqualsIgnoreCase);
      expect(Object.keys(s.Condition!).every((op) => op === "StringEqualsIgnoreCase" || op === "StringEquals")).toBe(true);
    }
    // Both sets are reachable.
    for (const c of setConditions) expect(releasing.some((s) => JSON.stringify(s.Condition?.StringEqualsIgnoreCase) === JSON.stringify(c))).toBe(true);
    const sids = statements.map((s) => s.Sid);
    expect(new Set(sids).size).toBe(sids.length);
  });

  it("has one Deny per PCR index, listing that index's allowed values, for every principal and every release action", () => {
    const denies = statementsOf().filter((s) => s.Sid?.startsWith("DenyUnlistedPCR"));
    expect(denies).toEqual(
      [0, 1, 2].map((i) => ({
        Sid: `DenyUnlistedPCR${i}`,
        Effect: "Deny",
        Principal: "*",
        Action: [...KEY_RELEASE_ACTIONS],
        Resource: "*",
        Condition: { StringNotEqualsIgnoreCase: { [`kms:RecipientAttestation:PCR${i}`]: [V1[i as 0], V2[i as 0]] } },
      })),
    );
    // One set: a single value, not a list.
    const single = buildKeyPolicy({ manifest: manifest([{ label: "v1", pcrs: V1 }]), enclaveRoleArn: ROLE, adminArn: ADMIN }).policy.Statement as unknown as Statement[];
    expect(single.find((s) => s.Sid === "DenyUnlistedPCR0")!.Condition).toEqual({ StringNotEqualsIgnoreCase: { "kms:RecipientAttestation:PCR0": V1[0] } });
  });

  it("with --secret: identity only under its purpose, provider secrets only as name/origin pairs", () => {
    const statements = statementsOf({ secrets: SECRETS });
    expect(statements.find((s) => s.Sid === "EnclaveIdentity1")).toMatchObject({
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Condition: { StringEquals: { "kms:EncryptionContext:egw:purpose": "enclave-identity" } },
    });
    expect(statements.filter((s) => s.Sid?.startsWith("EnclaveSecrets1")).map((s) => [s.Action, s.Condition?.StringEquals])).toEqual([
      [
        "kms:Decrypt",
        {
          "kms:EncryptionContext:egw:purpose": "provider-secret",
          "kms:EncryptionContext:egw:secret": ["OPENAI_API_KEY", "OPENAI_ORG_KEY"],
          "kms:EncryptionContext:egw:origin": OPENAI,
        },
      ],
      [
        "kms:Decrypt",
        { "kms:EncryptionContext:egw:purpose": "provider-secret", "kms:EncryptionContext:egw:secret": "ANTHROPIC_API_KEY", "kms:EncryptionContext:egw:origin": ANTHROPIC },
      ],
    ]);
    expect(statements.some((s) => s.Sid === "EnclaveDecrypt1")).toBe(false);
  });

  it("immutable: no Allow of a policy-changing action for anyone, an unconditional Deny of each for *, and the lockout-check bypass", () => {
    const { policy, warnings, bypassPolicyLockoutSafetyCheck } = build({ immutable: true });
    const statements = policy.Statement as unknown as Statement[];
    for (const action of POLICY_CHANGE_ACTIONS) {
      expect(
        statements.filter((s) => s.Effect === "Allow" && coversAction(s, action)),
        action,
      ).toEqual([]);
      expect(statements.some((s) => s.Effect === "Deny" && s.Principal === "*" && s.Condition === undefined && coversAction(s, action))).toBe(true);
    }
    expect(statements.filter((s) => s.Effect === "Allow" && coversAction(s, "kms:UpdatePrimaryRegion"))).toEqual([]);
    expect(bypassPolicyLockoutSafetyCheck).toBe(true);
    expect(build().bypassPolicyLockoutSafetyCheck).toBe(false);
    const text = warnings.join("\n");
    expect(text).toMatch(/NEW key and every secret re-sealed/);
    expect(text).toMatch(/BypassPolicyLockoutSafetyCheck/);
    expect(text).not.toMatch(/NOT IMMUTABLE/);
  });

  it("denies Encrypt and ReEncrypt under the identity encryption context, and ReEncrypt altogether", () => {
    const statements = statementsOf();
    const [[key, value]] = Object.entries(IDENTITY_ENCRYPTION_CONTEXT) as [[string, string]];
    expect(statements.find((s) => s.Sid === "DenyIdentityOutsideEnclave")).toMatchObject({
      Effect: "Deny",
      Principal: "*",
      Condition: { StringEquals: { [`kms:EncryptionContext:${key}`]: value } },
    });
    expect(statements.find((s) => s.Sid === "DenyReEncrypt")).toEqual({
      Sid: "DenyReEncrypt",
      Effect: "Deny",
      Principal: "*",
      Action: ["kms:ReEncryptFrom", "kms:ReEncryptTo"],
      Resource: "*",
    });
    expect(statements.find((s) => s.Sid === "DenyDecryptWithoutAttestation")).toMatchObject({ Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } } });
  });
});

describe("buildKeyPolicy: warnings and refusals", () => {
  it("without --immutable, warns loudly that PutKeyPolicy reaches the identity and every sealed key; warns about grants and a missing --secret", () => {
    const text = build().warnings.join("\n");
    expect(text).toMatch(/NOT IMMUTABLE: .*kms:PutKeyPolicy.*shared identity and every sealed provider key/);
    expect(text).toMatch(/CreateGrant/);
    expect(text).toMatch(/no --secret given/);
    expect(build({ secrets: SECRETS }).warnings.join("\n")).not.toMatch(/no --secret given/);
  });

  it.each([0, 1, 2])("refuses an all-zero PCR%i (debug mode) unless allowDebug", (index) => {
    const debug = manifest([{ label: "dbg", pcrs: { ...V1, [index]: h("00") } }]);
    expect(codeOf(() => build({ manifest: debug }))).toBe("ERR_KEY_POLICY_DEBUG_MEASUREMENT");
    const allowed = build({ manifest: debug, allowDebug: true });
    expect(allowed.warnings.join("\n")).toMatch(/debug-mode enclave/);
  });

  it("warns about the manifest's allowDebug and sets without PCR0; refuses PCRs KMS cannot condition on", () => {
    const w = build({ manifest: manifest([{ label: "no-image", pcrs: { 1: V1[1] } }], { allowDebug: true }) }).warnings.join("\n");
    expect(w).toMatch(/does not pin PCR0/);
    expect(w).toMatch(/allows debug mode/);
    expect(codeOf(() => build({ manifest: manifest([{ label: "x", pcrs: { 15: V1[0] } }]) }))).toBe("ERR_KEY_POLICY");
  });

  it("refuses sets with no PCR in common (no Deny could require an allowed measurement); warns about PCRs only some sets pin", () => {
    expect(
      codeOf(() =>
        build({
          manifest: manifest([
            { label: "a", pcrs: { 0: V1[0] } },
            { label: "b", pcrs: { 8: V2[0] } },
          ]),
        }),
      ),
    ).toBe("ERR_KEY_POLICY");
    const partial = build({
      manifest: manifest([
        { label: "a", pcrs: V1 },
        { label: "b", pcrs: { 0: V2[0] } },
      ]),
    });
    expect(partial.warnings.join("\n")).toMatch(/PCR1, PCR2 are pinned by some measurement sets only/);
    expect((partial.policy.Statement as unknown as Statement[]).filter((s) => s.Sid?.startsWith("DenyUnlistedPCR")).map((s) => s.Sid)).toEqual(["DenyUnlistedPCR0"]);
  });

  it("names the residual when PCRs vary independently of the image (PCR3, PCR8), and not when PCR0 decides PCR1/PCR2", () => {
    expect(build().warnings.join("\n")).not.toMatch(/combinations/);
    const roles = manifest([
      { label: "a", pcrs: { 0: V1[0], 3: h("d1") } },
      { label: "b", pcrs: { 0: V2[0], 3: h("d2") } },
    ]);
    const { policy, warnings } = build({ manifest: roles });
    expect(warnings.join("\n")).toMatch(/admit 4 combinations of PCR0\/PCR3 for 2 measurement sets \(PCR3 vary independently/);
    // The residual, shown: set a's image under set b's role passes the Denies, and only the Allows stop it.
    const mixed: KmsRequest = { principal: ROLE, action: "kms:Decrypt", pcrs: { 0: V1[0], 3: h("d2") } };
    const statements = policy.Statement as unknown as Statement[];
    expect(evaluate(statements, mixed)).toBe("implicit-deny");
    expect(evaluate([...statements, ROGUE_ALLOW], mixed)).toBe("allow");
  });

  it.each([
    ["a bad name", [{ name: "lower", origin: OPENAI }]],
    ["an http: origin", [{ name: "K", origin: "http://api.openai.com" }]],
    ["an origin with a path", [{ name: "K", origin: `${OPENAI}/v1` }]],
    [
      "a name twice",
      [
        { name: "K", origin: OPENAI },
        { name: "K", origin: ANTHROPIC },
      ],
    ],
    ["an empty list", []],
    ["too many", Array.from({ length: 65 }, (_, i) => ({ name: `K${i}`, origin: OPENAI }))],
  ])("refuses --secret with %s", (_what, secrets) => {
    expect(codeOf(() => build({ secrets }))).toBe("ERR_KEY_POLICY");
  });

  it("admits http: origins only with allowHttpOrigins", () => {
    const statements = statementsOf({ secrets: [{ name: "K", origin: "http://127.0.0.1:8080" }], allowHttpOrigins: true });
    expect(JSON.stringify(statements)).toContain('"kms:EncryptionContext:egw:origin":"http://127.0.0.1:8080"');
  });

  it("refuses principals that are not IAM ARNs", () => {
    expect(() => build({ enclaveRoleArn: "*" })).toThrow(/IAM ARN/);
    expect(() => build({ sealerArn: "arn:aws:iam::111122223333:role/x y" })).toThrow(/IAM ARN/);
  });
});
