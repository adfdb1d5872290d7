import type { Manifest, MeasurementSet } from "../../../attestation/client/policy.js";
import { IDENTITY_ENCRYPTION_CONTEXT } from "../../../enclave/secrets/identity-blob.js";
import { PROVIDER_SECRET_PURPOSE, providerSecretContext, SecretContextError } from "../../../enclave/secrets/secret-context.js";
import { measurementDeny } from "./measurement-deny.js";
import { EgwError } from "../../../attestation/egw-error.js";

/**
 * The KMS key policy that releases provider keys only to a measured enclave
 * (AWS KMS developer guide, "Condition keys for AWS Nitro Enclaves"):
 *  - Allow kms:Decrypt / kms:GenerateDataKey for the enclave's role, one
 *    statement per measurement set, only when every listed PCR matches
 *    (kms:RecipientAttestation:PCR<n>, StringEqualsIgnoreCase as AWS's
 *    examples). With `secrets`, the Allow is split: identity operations only
 *    under egw:purpose=enclave-identity, and Decrypt of provider secrets only
 *    for the named secret/origin pairs (kms:EncryptionContext:<key>, the pairs
 *    of enclave/secrets/secret-context.ts), one statement per origin so that
 *    a name is released only together with its own origin.
 *  - Deny kms:Decrypt and GenerateDataKey* to every principal unless each PCR
 *    that all sets pin has one of the manifest's values (measurement-deny.ts:
 *    what that is equivalent to, and its residual), plus the older Deny for
 *    requests with no attestation at all; Deny Encrypt/ReEncrypt under the
 *    identity context, and ReEncrypt altogether.
 *  - Administration for the admin, Encrypt (sealing) for the sealer.
 *  - `immutable`: nobody can change the policy: no PutKeyPolicy, CreateGrant
 *    or ReplicateKey for anyone, and an explicit Deny of them for "*". KMS's
 *    policy lockout safety check refuses such a policy in CreateKey /
 *    PutKeyPolicy unless BypassPolicyLockoutSafetyCheck is true (AWS KMS API
 *    reference, CreateKey). ScheduleKeyDeletion stays with the admin: deleting
 *    the key costs availability, never confidentiality, and an immutable key
 *    whose images are retired must be removable (7–30 day window, visible in
 *    CloudTrail, cancellable).
 * Debug-mode measurements (all-zero PCRs: what Nitro reports for any image
 * started with --debug-mode) are refused unless `allowDebug`.
 */
export interface KeyPolicyInput {
  manifest: Manifest;
  /** Role the parent instance (and so the enclave) uses to call KMS. */
  enclaveRoleArn: string;
  /** Principal that administers the key. */
  adminArn: string;
  /** Principal that seals secrets (kms:Encrypt); defaults to the admin. */
  sealerArn?: string;
  /** Development only: admit all-zero (debug-mode) PCR values. */
  allowDebug?: boolean;
  /** No principal may ever change this policy (see above). */
  immutable?: boolean;
  /** Restrict provider-secret Decrypt to these name/origin pairs (egw seal --name/--origin). */
  secrets?: readonly { name: string; origin: string }[];
  /** Development only: admit http: origins in `secrets`. */
  allowHttpOrigins?: boolean;
}

export interface KeyPolicy {
  policy: { Version: "2012-10-17"; Statement: Record<string, unknown>[] };
  warnings: string[];
  /** True for an immutable policy: CreateKey / PutKeyPolicy must pass BypassPolicyLockoutSafetyCheck. */
  bypassPolicyLockoutSafetyCheck: boolean;
}

/** PCRs KMS exposes as condition keys for Nitro Enclaves. */
export const KMS_PCR_CONDITION_INDEXES = [0, 1, 2, 3, 4, 8] as const;
/** Every action that can hand out key material; each must be bound to an attested, allowed measurement. */
export const KEY_RELEASE_ACTIONS = [
  "kms:Decrypt",
  "kms:GenerateDataKey",
  "kms:GenerateDataKeyWithoutPlaintext",
  "kms:GenerateDataKeyPair",
  "kms:GenerateDataKeyPairWithoutPlaintext",
] as const;
/** Actions that change who may use the key; an immutable policy grants them to nobody and denies them to all. */
export const POLICY_CHANGE_ACTIONS = ["kms:PutKeyPolicy", "kms:CreateGrant", "kms:ReplicateKey"] as const;
/** A policy for this many provider secrets is far inside KMS's 32 KiB; more is a mistake. */
export const MAX_POLICY_SECRETS = 64;

const ARN = /^arn:aws[a-z-]*:iam::\d{12}:(root|role\/[\w+=,.@/-]{1,512}|user\/[\w+=,.@/-]{1,512})$/;

const MUTABLE_ADMIN_ACTIONS = [
  "kms:Create*",
  "kms:Describe*",
  "kms:Enable*",
  "kms:List*",
  "kms:Put*",
  "kms:Update*",
  "kms:Revoke*",
  "kms:Disable*",
  "kms:Get*",
  "kms:Delete*",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
];
/** No Create* (CreateGrant), Put* (PutKeyPolicy), Update* (UpdatePrimaryRegion), Replicate*: nothing that moves trust. */
const IMMUTABLE_ADMIN_ACTIONS = [
  "kms:Describe*",
  "kms:List*",
  "kms:Get*",
  "kms:EnableKey",
  "kms:EnableKeyRotation",
  "kms:DisableKey",
  "kms:DisableKeyRotation",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
];

export type KeyPolicyErrorCode =
  | "ERR_KEY_POLICY" // a principal, measurement set or secret the policy cannot be built from
  | "ERR_KEY_POLICY_DEBUG_MEASUREMENT"; // an all-zero PCR without allowDebug

export class KeyPolicyError extends EgwError<KeyPolicyErrorCode> {
  override readonly name = "KeyPolicyError";
  constructor(message: string, code: KeyPolicyErrorCode = "ERR_KEY_POLICY") {
    super(code, message, code === "ERR_KEY_POLICY_DEBUG_MEASUREMENT" ? "reject" : "fix-input");
  }
}

const hex = (v: Uint8Array) => Buffer.from(v).toString("hex");
const one = (values: string[]): string | string[] => (values.length === 1 ? values[0]! : values);

function pcrCondition(set: MeasurementSet, allowDebug: boolean, warnings: string[]): Record<string, string> {
  const condition: Record<string, string> = {};
  for (const [index, value] of [...set.pcrs.entries()].sort((a, b) => a[0] - b[0])) {
    if (!(KMS_PCR_CONDITION_INDEXES as readonly number[]).includes(index)) {
      throw new KeyPolicyError(`measurement "${set.label}" uses PCR${index}; KMS conditions exist for PCR ${KMS_PCR_CONDITION_INDEXES.join(", ")} only`);
    }
    if (value.every((b) => b === 0)) {
      if (!allowDebug) {
        throw new KeyPolicyError(
          `measurement "${set.label}": PCR${index} is all zero, which every debug-mode enclave reports whatever its image (and its parent can read its memory); refusing without --allow-debug`,
          "ERR_KEY_POLICY_DEBUG_MEASUREMENT",
        );
      }
      warnings.push(`measurement "${set.label}": PCR${index} is all zero — a debug-mode enclave, whose memory its parent can read (admitted by --allow-debug)`);
    }
    condition[`kms:RecipientAttestation:PCR${index}`] = hex(value);
  }
  if (!set.pcrs.has(0)) warnings.push(`measurement "${set.label}" does not pin PCR0 (the image): any image with the listed PCRs gets the keys`);
  return condition;
}

/** Origin → names, checked with the same rules as `egw seal` (one origin per name). */
function secretsByOrigin(secrets: readonly { name: string; origin: string }[], allowHttp: boolean): Map<string, string[]> {
  if (secrets.length > MAX_POLICY_SECRETS) throw new KeyPolicyError(`at most ${MAX_POLICY_SECRETS} secrets, got ${secrets.length}`);
  const byOrigin = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const { name, origin } of secrets) {
    let context: Readonly<Record<string, string>>;
    try {
      context = providerSecretContext(name, origin, { dev: allowHttp });
    } catch (err) {
      if (err instanceof SecretContextError) throw new KeyPolicyError(`secret ${String(name).slice(0, 80)}: ${err.message}`);
      throw err;
    }
    if (seen.has(name)) throw new KeyPolicyError(`secret ${name} is listed twice: a sealed secret is bound to one origin`);
    seen.add(name);
    const o = context["egw:origin"]!;
    byOrigin.set(o, [...(byOrigin.get(o) ?? []), name]);
  }
  return byOrigin;
}

export function buildKeyPolicy(input: KeyPolicyInput): KeyPolicy {
  for (const [name, arn] of [
    ["enclave role", input.enclaveRoleArn],
    ["admin", input.adminArn],
    ["sealer", input.sealerArn ?? input.adminArn],
  ] as const) {
    if (!ARN.test(arn)) throw new KeyPolicyError(`${name} must be an IAM ARN (arn:aws:iam::<account>:role/… or :root), got "${arn.slice(0, 80)}"`);
  }
  const warnings: string[] = [];
  const sets = input.manifest.measurements;
  if (sets.length === 0) throw new KeyPolicyError("the manifest names no measurement set");
  const immutable = input.immutable === true;
  const byOrigin = input.secrets === undefined ? undefined : secretsByOrigin(input.secrets, input.allowHttpOrigins === true);
  if (byOrigin !== undefined && byOrigin.size === 0) throw new KeyPolicyError("secrets is given but empty: name at least one NAME=ORIGIN, or leave it out");

  const statements: Record<string, unknown>[] = [
    {
      Sid: "KeyAdministration",
      Effect: "Allow",
      Principal: { AWS: input.adminArn },
      Action: immutable ? IMMUTABLE_ADMIN_ACTIONS : MUTABLE_ADMIN_ACTIONS,
      Resource: "*",
    },
    { Sid: "SealSecrets", Effect: "Allow", Principal: { AWS: input.sealerArn ?? input.adminArn }, Action: "kms:Encrypt", Resource: "*" },
  ];
  const enclave = { Effect: "Allow", Principal: { AWS: input.enclaveRoleArn }, Resource: "*" };
  sets.forEach((set, i) => {
    const pcrs = pcrCondition(set, input.allowDebug === true, warnings);
    if (byOrigin === undefined) {
      // GenerateDataKey: an enclave making (or rotating) the shared sealed
      // identity gets its data key only as CiphertextForRecipient.
      statements.push({ Sid: `EnclaveDecrypt${i + 1}`, ...enclave, Action: ["kms:Decrypt", "kms:GenerateDataKey"], Condition: { StringEqualsIgnoreCase: pcrs } });
      return;
    }
    const identity = Object.fromEntries(Object.entries(IDENTITY_ENCRYPTION_CONTEXT).map(([k, v]) => [`kms:EncryptionContext:${k}`, v]));
    statements.push({
      Sid: `EnclaveIdentity${i + 1}`,
      ...enclave,
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Condition: { StringEqualsIgnoreCase: pcrs, StringEquals: identity },
    });
    [...byOrigin].forEach(([origin, names], j) => {
      statements.push({
        Sid: `EnclaveSecrets${i + 1}Origin${j + 1}`,
        ...enclave,
        Action: "kms:Decrypt",
        // Keys of one block are ANDed, values of one key ORed: any of these names, for this origin only.
        Condition: {
          StringEqualsIgnoreCase: pcrs,
          StringEquals: {
            "kms:EncryptionContext:egw:purpose": PROVIDER_SECRET_PURPOSE,
            "kms:EncryptionContext:egw:secret": one(names),
            "kms:EncryptionContext:egw:origin": origin,
          },
        },
      });
    });
  });

  const deny = measurementDeny(sets);
  if (deny === undefined) {
    throw new KeyPolicyError("the measurement sets have no PCR in common, so no Deny can require an allowed measurement; pin the same PCR (PCR0) in every set");
  }
  for (const [index, values] of deny.allowed) {
    statements.push({
      Sid: `DenyUnlistedPCR${index}`,
      Effect: "Deny",
      Principal: "*",
      Action: [...KEY_RELEASE_ACTIONS],
      Resource: "*",
      // Negated operator: true when the value is none of these, and when the key is absent (no attestation).
      Condition: { StringNotEqualsIgnoreCase: { [`kms:RecipientAttestation:PCR${index}`]: one(values) } },
    });
  }
  if (deny.notDenied.length > 0) {
    warnings.push(
      `PCR${deny.notDenied.join(", PCR")} ${deny.notDenied.length === 1 ? "is" : "are"} pinned by some measurement sets only: enforced by their Allow statements, not by a Deny`,
    );
  }
  if (deny.residual !== undefined) warnings.push(deny.residual);
  statements.push(
    {
      Sid: "DenyDecryptWithoutAttestation",
      Effect: "Deny",
      Principal: "*",
      Action: "kms:Decrypt",
      Resource: "*",
      // Implied by DenyUnlistedPCR* (absent key), stated on its own so the rule reads plainly.
      Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } },
    },
    {
      Sid: "DenyDataKeyWithoutAttestation",
      Effect: "Deny",
      Principal: "*",
      Action: ["kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext"],
      Resource: "*",
      Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } },
    },
    {
      // The sealed identity (TLS and receipt keys) must be made inside a
      // measured enclave. Encrypt cannot carry an attestation, so nobody may
      // Encrypt under the identity context: a blob made outside would hold
      // keys its maker knows (enclave/secrets/identity-blob.ts).
      Sid: "DenyIdentityOutsideEnclave",
      Effect: "Deny",
      Principal: "*",
      Action: ["kms:Encrypt", "kms:ReEncrypt*"],
      Resource: "*",
      Condition: { StringEquals: { "kms:EncryptionContext:egw:purpose": "enclave-identity" } },
    },
    {
      // ReEncrypt moves a ciphertext under another key without a recipient:
      // that would let a principal lift a sealed secret to a key it controls.
      Sid: "DenyReEncrypt",
      Effect: "Deny",
      Principal: "*",
      Action: ["kms:ReEncryptFrom", "kms:ReEncryptTo"],
      Resource: "*",
    },
  );
  if (immutable) {
    // ReplicateKey makes a multi-Region replica with a key policy of the caller's choosing, which decrypts the same ciphertexts.
    statements.push({ Sid: "DenyPolicyChange", Effect: "Deny", Principal: "*", Action: [...POLICY_CHANGE_ACTIONS], Resource: "*" });
    warnings.push(
      "immutable policy: nobody can ever change it. A new image measurement needs a NEW key and every secret re-sealed (egw seal) under it; " +
        "the admin can still disable the key or schedule its deletion (availability, not confidentiality).",
      "KMS's policy lockout safety check refuses this policy unless CreateKey / PutKeyPolicy is called with BypassPolicyLockoutSafetyCheck=true " +
        "(aws kms create-key --bypass-policy-lockout-safety-check --policy file://policy.json).",
    );
  } else {
    warnings.push(
      `NOT IMMUTABLE: ${input.adminArn} can kms:PutKeyPolicy. Whoever can rewrite this policy can drop the attestation conditions and obtain the shared ` +
        "identity and every sealed provider key. Protect that principal (MFA, SCPs), alert on PutKeyPolicy in CloudTrail, or use --immutable.",
      `${input.adminArn} can kms:CreateGrant: a grant for kms:Decrypt is still bound by the Denies above (allowed measurement only), but review grants with ListGrants.`,
    );
  }
  if (byOrigin === undefined) {
    warnings.push("no --secret given: an allowed enclave may Decrypt any ciphertext under this key, whatever its encryption context; name each NAME=ORIGIN to bind them");
  }
  if (input.manifest.allowDebug) warnings.push("the manifest allows debug mode; a key policy must not: remove allowDebug for production keys");
  return { policy: { Version: "2012-10-17", Statement: statements }, warnings, bypassPolicyLockoutSafetyCheck: immutable };
}
