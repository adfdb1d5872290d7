import { timingSafeEqual } from "node:crypto";
import type { ReceiptClaims } from "../receipt.js";
import { parseTrustPolicy, trustPolicySha256, TrustPolicyError, upstreamOrigins, type TrustPolicy } from "../trust-policy.js";
import { ClientError, type ClientStep } from "./errors.js";
import type { TrustSetting } from "./trust-constraints.js";

/**
 * The relying party's checks on the trust policy an enclave attests
 * (channel binding v3 `policy_sha256`), in order:
 *  1. the bytes served at GET /v1/attestation/policy hash to the attested
 *     value (ERR_TRUST_POLICY_MISMATCH: the host may serve another policy
 *     than the enclave runs, and only the hash in the signed document counts);
 *  2. they parse as a trust policy, under development rules only when the
 *     document chained to a development root (ERR_TRUST_POLICY_INVALID);
 *  3. they satisfy every constraint of the trust section (ERR_TRUST_NOT_ALLOWED,
 *     naming the constraint and the value).
 * All before a byte of the caller's request is written (connection.ts).
 * Then every receipt's upstream origin is checked against the same policy
 * and section (checkReceiptUpstream).
 */
export interface AttestedTrustPolicy {
  policy: TrustPolicy;
  /** The exact bytes served, whose SHA-256 is the attested policy_sha256. */
  bytes: Uint8Array;
  sha256: Uint8Array;
  /** The provider origins of the policy ("local" for the built-in model), sorted. */
  origins: string[];
  /** The trust section it was checked against. */
  constraints: TrustSetting;
}

export const TRUST_POLICY_PATH = "/v1/attestation/policy";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function notAllowed(message: string): ClientError {
  return new ClientError("ERR_TRUST_NOT_ALLOWED", message);
}

/**
 * Checks a trust policy against a trust section; returns the report line.
 * Throws ERR_TRUST_NOT_ALLOWED naming the first constraint that failed.
 */
export function checkTrustConstraints(policy: TrustPolicy, sha256: Uint8Array, trust: TrustSetting): string {
  const origins = upstreamOrigins(policy);
  if (trust === "any") return `NOT constrained (trust "any"): upstream origins ${origins.join(", ")}; identity ${policy.identity.mode}`;
  const passed: string[] = [];
  if (trust.policySha256) {
    if (!trust.policySha256.some((h) => same(h, sha256)))
      throw notAllowed(`policySha256: the trust policy's sha256 ${hex(sha256)} is not among the ${trust.policySha256.length} pinned`);
    passed.push("policy sha256 pinned");
  }
  if (trust.upstreamOrigins) {
    const allowed = new Set(trust.upstreamOrigins);
    for (const p of policy.providers) {
      if (!allowed.has(p.origin))
        throw notAllowed(
          `upstreamOrigins: provider "${p.name}" sends to ${p.origin.slice(0, 200)}, which is not an allowed origin (${trust.upstreamOrigins.join(", ").slice(0, 400)})`,
        );
    }
    passed.push(`upstream origins ${origins.join(", ")} allowed`);
  }
  if (trust.identity) {
    const actual = policy.identity;
    if (trust.identity.mode !== actual.mode) {
      throw notAllowed(
        `identity: the trust policy's identity is ${actual.mode}${actual.mode === "sealed" ? ` under ${actual.kmsKeyArn}` : ""}, ${trust.identity.mode} is required`,
      );
    }
    if (trust.identity.mode === "sealed" && actual.mode === "sealed" && trust.identity.kmsKeyArn !== actual.kmsKeyArn) {
      throw notAllowed(`identity.kmsKeyArn: the identity is sealed under ${actual.kmsKeyArn}, ${trust.identity.kmsKeyArn} is required`);
    }
    passed.push(`identity ${actual.mode}${actual.mode === "sealed" ? ` under ${actual.kmsKeyArn}` : ""}`);
  }
  // A Bedrock origin is the same for every AWS account; the account the enclave signs as is what decides who could log prompts.
  const bedrock = policy.providers.filter((p) => p.bedrock !== undefined);
  if (bedrock.length > 0 && !trust.policySha256) {
    if (!trust.awsAccounts) {
      throw notAllowed(
        `awsAccounts: provider "${bedrock[0]!.name}" signs as AWS account ${bedrock[0]!.bedrock!.accountId}, and this trust section does not constrain Bedrock accounts`,
      );
    }
    for (const p of bedrock) {
      if (!trust.awsAccounts.includes(p.bedrock!.accountId))
        throw notAllowed(`awsAccounts: provider "${p.name}" signs as AWS account ${p.bedrock!.accountId}, which is not an allowed account (${trust.awsAccounts.join(", ")})`);
    }
    passed.push(`Bedrock accounts ${[...new Set(bedrock.map((p) => p.bedrock!.accountId))].join(", ")} allowed`);
  }
  if (trust.secretsKmsKeyArn !== undefined) {
    // A policy with no sealed secret sends no provider key anywhere: it passes.
    if (policy.secrets !== undefined && policy.secrets.kmsKeyArn !== trust.secretsKmsKeyArn) {
      throw notAllowed(`secretsKmsKeyArn: provider keys are released by ${policy.secrets.kmsKeyArn}, ${trust.secretsKmsKeyArn} is required`);
    }
    passed.push(policy.secrets ? `secrets key ${policy.secrets.kmsKeyArn}` : "no sealed secrets");
  }
  return passed.join("; ");
}

/**
 * Steps 1–3 above over the bytes a gateway served. A constraint failure
 * carries the steps (hash passed, constraint failed). `dev` is whether the
 * document chained to a development root: only then may the policy use
 * development rules (plain http origins, first-party kinds elsewhere).
 */
export function checkServedTrustPolicy(args: { bytes: Uint8Array; attestedSha256: Uint8Array; dev: boolean; trust: TrustSetting }): {
  attested: AttestedTrustPolicy;
  steps: ClientStep[];
} {
  const sha256 = trustPolicySha256(args.bytes);
  if (!same(sha256, args.attestedSha256)) {
    throw new ClientError(
      "ERR_TRUST_POLICY_MISMATCH",
      `the trust policy served (${args.bytes.length} bytes, sha256 ${hex(sha256)}) is not the attested one (policy_sha256 ${hex(args.attestedSha256)})`,
    );
  }
  const steps: ClientStep[] = [
    { step: "trust-policy", status: "passed", detail: `${args.bytes.length} bytes served over this connection hash to the attested policy_sha256 ${hex(sha256)}` },
  ];
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(args.bytes, { dev: args.dev });
  } catch (err) {
    if (err instanceof TrustPolicyError)
      throw new ClientError("ERR_TRUST_POLICY_INVALID", `${err.message}${args.dev ? "" : " (production rules: the document chains to the AWS root)"}`, { cause: err });
    throw err;
  }
  let detail: string;
  try {
    detail = checkTrustConstraints(policy, sha256, args.trust);
  } catch (err) {
    // The report shows that the policy was the attested one, then which constraint failed.
    if (!(err instanceof ClientError)) throw err;
    throw new ClientError(err.code, err.message, { steps: [...steps, { step: "trust", status: "failed", detail: `${err.code}: ${err.message}` }] });
  }
  steps.push({ step: "trust", status: args.trust === "any" ? "not-requested" : "passed", detail });
  return { attested: { policy, bytes: args.bytes, sha256, origins: upstreamOrigins(policy), constraints: args.trust }, steps };
}

/**
 * A receipt's upstream, when it names one, must be a provider origin of the
 * attested trust policy and, when the section constrains origins, an allowed
 * one. `trust` null: the document attests no policy (binding v1/v2), which
 * the connection accepted only under trust "any", so there is nothing to
 * hold the receipt to.
 */
export function checkReceiptUpstream(claims: ReceiptClaims, trust: AttestedTrustPolicy | null): void {
  const origin = claims.upstream?.origin;
  if (origin === undefined || trust === null) return;
  if (!trust.origins.includes(origin)) {
    throw new ClientError(
      "ERR_RECEIPT_UPSTREAM_NOT_ALLOWED",
      `the receipt says ${origin.slice(0, 200)} answered, which no provider of the attested trust policy uses (${trust.origins.join(", ").slice(0, 400)})`,
    );
  }
  const c = trust.constraints;
  if (c !== "any" && c.upstreamOrigins && !c.upstreamOrigins.includes(origin)) {
    throw new ClientError("ERR_RECEIPT_UPSTREAM_NOT_ALLOWED", `the receipt says ${origin.slice(0, 200)} answered, which is not an allowed upstream origin`);
  }
}
