import type { Manifest } from "../../attestation/client/policy.js";

/**
 * The KMS key policy that releases provider keys only to a measured enclave
 * (AWS KMS "Condition keys for AWS Nitro Enclaves"):
 *  - one Allow statement per measurement set of the manifest: kms:Decrypt for
 *    the enclave's role, only when every listed PCR matches
 *    (kms:RecipientAttestation:PCR<n>; PCR0 doubles as ImageSha384);
 *  - an explicit Deny of kms:Decrypt for every principal when the request
 *    carries no recipient attestation, so no grant, role policy or later
 *    Allow can release plaintext to the host;
 *  - the same Deny for GenerateDataKey*, and a Deny of Encrypt/ReEncrypt
 *    under the identity encryption context, so the shared identity can
 *    only have been made inside a measured enclave;
 *  - key administration and Encrypt (sealing) for the named principals.
 * Warnings name what could still undo the attestation condition.
 */
export interface KeyPolicyInput {
  manifest: Manifest;
  /** Role the parent instance (and so the enclave) uses to call KMS. */
  enclaveRoleArn: string;
  /** Principal that administers the key. */
  adminArn: string;
  /** Principal that seals secrets (kms:Encrypt); defaults to the admin. */
  sealerArn?: string;
}

/** PCRs KMS exposes as condition keys for Nitro Enclaves. */
export const KMS_PCR_CONDITION_INDEXES = [0, 1, 2, 3, 4, 8] as const;

const ARN = /^arn:aws[a-z-]*:iam::\d{12}:(root|role\/[\w+=,.@/-]{1,512}|user\/[\w+=,.@/-]{1,512})$/;

export class KeyPolicyError extends Error {
  override readonly name = "KeyPolicyError";
  readonly code = "ERR_KEY_POLICY";
}

export function buildKeyPolicy(input: KeyPolicyInput): { policy: Record<string, unknown>; warnings: string[] } {
  for (const [name, arn] of [
    ["enclave role", input.enclaveRoleArn],
    ["admin", input.adminArn],
    ["sealer", input.sealerArn ?? input.adminArn],
  ] as const) {
    if (!ARN.test(arn)) throw new KeyPolicyError(`${name} must be an IAM ARN (arn:aws:iam::<account>:role/… or :root), got "${arn.slice(0, 80)}"`);
  }
  const warnings: string[] = [];
  if (input.manifest.measurements.length === 0) throw new KeyPolicyError("the manifest names no measurement set");
  const statements: Record<string, unknown>[] = [
    {
      Sid: "KeyAdministration",
      Effect: "Allow",
      Principal: { AWS: input.adminArn },
      Action: [
        "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
        "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      ],
      Resource: "*",
    },
    { Sid: "SealSecrets", Effect: "Allow", Principal: { AWS: input.sealerArn ?? input.adminArn }, Action: "kms:Encrypt", Resource: "*" },
  ];
  input.manifest.measurements.forEach((set, i) => {
    const condition: Record<string, string> = {};
    for (const [index, value] of [...set.pcrs.entries()].sort((a, b) => a[0] - b[0])) {
      if (!(KMS_PCR_CONDITION_INDEXES as readonly number[]).includes(index)) {
        throw new KeyPolicyError(`measurement "${set.label}" uses PCR${index}; KMS conditions exist for PCR ${KMS_PCR_CONDITION_INDEXES.join(", ")} only`);
      }
      if (value.every((b) => b === 0)) {
        warnings.push(`measurement "${set.label}": PCR${index} is all zero — that is a debug-mode enclave, whose memory its parent can read`);
      }
      condition[`kms:RecipientAttestation:PCR${index}`] = Buffer.from(value).toString("hex");
    }
    if (!set.pcrs.has(0)) warnings.push(`measurement "${set.label}" does not pin PCR0 (the image): any image with the listed PCRs gets the keys`);
    statements.push({
      Sid: `EnclaveDecrypt${i + 1}`,
      Effect: "Allow",
      Principal: { AWS: input.enclaveRoleArn },
      // GenerateDataKey: an enclave making (or rotating) the shared sealed
      // identity gets its data key only as CiphertextForRecipient.
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource: "*",
      Condition: { StringEqualsIgnoreCase: condition },
    });
  });
  statements.push({
    Sid: "DenyDecryptWithoutAttestation",
    Effect: "Deny",
    Principal: "*",
    Action: "kms:Decrypt",
    Resource: "*",
    // No attestation in the request → the key never leaves KMS in plaintext.
    Condition: { Null: { "kms:RecipientAttestation:ImageSha384": "true" } },
  });
  statements.push(
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
  warnings.push(
    `${input.adminArn} can kms:PutKeyPolicy: it can rewrite this policy and drop the attestation condition. Protect that principal (MFA, SCPs), and alert on PutKeyPolicy in CloudTrail.`,
    `${input.adminArn} can kms:CreateGrant: a grant for kms:Decrypt is still bound by the Deny above (no attestation, no release), but review grants with ListGrants.`,
  );
  if (input.manifest.allowDebug) warnings.push("the manifest allows debug mode; a key policy must not: remove allowDebug for production keys");
  return { policy: { Version: "2012-10-17", Statement: statements }, warnings };
}
