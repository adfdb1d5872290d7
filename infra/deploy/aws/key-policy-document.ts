import type { Manifest } from "../../../attestation/client/policy.js";
import { buildKeyPolicy, KeyPolicyError } from "../../review/kms/key-policy.js";
import { DeployError } from "./errors.js";

/**
 * Stands in for the parent role's ARN while `buildKeyPolicy` runs: the real
 * ARN is a CloudFormation token (the role is created in the same deployment),
 * which the function's ARN check rightly refuses. Account 000000000000 does
 * not exist, so the placeholder can never name a real principal if a
 * substitution were ever missed; `keyPolicyDocument` checks none is left.
 */
const ROLE_PLACEHOLDER = "arn:aws:iam::000000000000:role/egw-parent-role-placeholder";

/** KMS's limit for a key policy document (AWS KMS quotas: "Key policy document size"). */
const MAX_KEY_POLICY_BYTES = 32 * 1024;
/** Room left for the resolved role ARN, which is longer than the placeholder's token. */
const ARN_HEADROOM_BYTES = 128;

export interface KeyPolicyDocumentInput {
  manifest: Manifest;
  /** The parent role's ARN: a literal or a CDK token. */
  roleArn: string;
  adminArn: string;
  sealerArn?: string;
  /** Development only: admit debug-mode (all-zero) PCRs. */
  allowDebug?: boolean;
  /** A policy nobody can change (buildKeyPolicy); the key must then be created with BypassPolicyLockoutSafetyCheck. */
  immutable?: boolean;
  /** Provider secrets (name, origin) the key may release; see buildKeyPolicy. */
  secrets?: readonly { name: string; origin: string }[];
}

export interface KeyPolicyDocument {
  policy: { Version: string; Statement: Record<string, unknown>[] };
  warnings: string[];
  bypassPolicyLockoutSafetyCheck: boolean;
}

/**
 * The key policy of the stack: what `egw kms-policy` prints for the same
 * manifest and principals (both come from `buildKeyPolicy`), with the role's
 * ARN put back in. One guarantee is checked rather than assumed:
 *
 *  - kms:ReEncryptFrom decrypts inside KMS and re-encrypts under a key of the
 *    caller's choosing, which the caller can then Decrypt without any
 *    attestation; the Deny on kms:Decrypt does not cover it, and the
 *    administrator can create grants. If the shared policy has no
 *    unconditional Deny of it for every principal, one is added here.
 */
export function keyPolicyDocument(input: KeyPolicyDocumentInput): KeyPolicyDocument {
  if (input.adminArn === ROLE_PLACEHOLDER || input.sealerArn === ROLE_PLACEHOLDER) {
    throw new DeployError("ERR_DEPLOY_KEY_POLICY", "the admin or sealer ARN equals the internal role placeholder");
  }
  let built: ReturnType<typeof buildKeyPolicy>;
  try {
    built = buildKeyPolicy({
      manifest: input.manifest,
      enclaveRoleArn: ROLE_PLACEHOLDER,
      adminArn: input.adminArn,
      ...(input.sealerArn !== undefined && { sealerArn: input.sealerArn }),
      ...(input.secrets !== undefined && { secrets: input.secrets }),
      allowDebug: input.allowDebug === true,
      immutable: input.immutable === true,
    });
  } catch (cause) {
    if (cause instanceof KeyPolicyError) throw new DeployError("ERR_DEPLOY_KEY_POLICY", cause.message, { cause });
    throw cause;
  }
  const statements = built.policy.Statement.map((statement) => {
    const principal = statement.Principal as { AWS?: unknown } | string | undefined;
    if (typeof principal === "object" && principal.AWS === ROLE_PLACEHOLDER) {
      return { ...statement, Principal: { AWS: input.roleArn } };
    }
    return statement;
  });
  if (!statements.some(deniesToEveryone("kms:ReEncryptFrom"))) {
    statements.push({ Sid: "DenyReEncryptFromThisKey", Effect: "Deny", Principal: "*", Action: "kms:ReEncryptFrom", Resource: "*" });
  }
  const policy = { Version: built.policy.Version, Statement: statements };
  const text = JSON.stringify(policy);
  if (text.includes(ROLE_PLACEHOLDER)) {
    throw new DeployError("ERR_DEPLOY_KEY_POLICY", "internal: the role placeholder survived in the key policy");
  }
  if (Buffer.byteLength(text) + ARN_HEADROOM_BYTES * input.manifest.measurements.length > MAX_KEY_POLICY_BYTES) {
    throw new DeployError(
      "ERR_DEPLOY_KEY_POLICY",
      `the key policy for ${input.manifest.measurements.length} measurement sets would exceed KMS's ${MAX_KEY_POLICY_BYTES}-byte limit; retire old sets from the manifest`,
    );
  }
  return { policy, warnings: built.warnings, bypassPolicyLockoutSafetyCheck: built.bypassPolicyLockoutSafetyCheck };
}

/** An unconditional Deny for Principal "*" whose Action list names `action` or a wildcard over it. */
function deniesToEveryone(action: string): (statement: Record<string, unknown>) => boolean {
  const [service] = action.split(":");
  const covering = new Set(["*", `${service}:*`, action]);
  for (let i = action.length - 1; i > action.indexOf(":"); i--) covering.add(`${action.slice(0, i)}*`);
  return (statement) =>
    statement.Effect === "Deny" &&
    statement.Principal === "*" &&
    statement.Condition === undefined &&
    ([] as unknown[]).concat(statement.Action).some((a) => typeof a === "string" && covering.has(a));
}
