import { KMS_KEY_ARN } from "../trust-policy.js";
import { ClientError } from "./errors.js";

/**
 * What a relying party requires of the attested trust policy (issue 11 §2):
 * the policy decides where prompts, provider keys and the identity can go,
 * so the client constrains those destinations rather than pinning a hash
 * that changes with every token (the operations document does not count).
 *
 * ```jsonc
 * "trust": "any"                                   // on purpose: constrains nothing, and is reported so
 * "trust": {
 *   "upstreamOrigins": ["https://api.openai.com", "local"],  // every provider origin of the policy is one of these
 *   "identity": { "mode": "ephemeral" },           // or { "mode": "sealed", "kmsKeyArn": "arn:aws:kms:…:key/…" }
 *   "secretsKmsKeyArn": "arn:aws:kms:…:key/…",     // the policy's secrets key is this one (no secrets passes)
 *   "awsAccounts": ["111122223333"],               // every Bedrock provider is pinned to one of these accounts
 *   "policySha256": ["<64 hex>"]                   // the policy's exact bytes hash to one of these
 * }
 * ```
 *
 * `awsAccounts` exists because a Bedrock provider's origin is the same for
 * every AWS account: a policy the host wrote could pin the host's own
 * account (whose invocation logging would see every prompt) and still pass
 * `upstreamOrigins`. So a policy with a Bedrock provider passes only a
 * section that names `awsAccounts` (or pins the exact policy hash).
 *
 * Fail closed, as `measurements` does: the section is required, an object
 * that constrains nothing is refused (it would look checked and check
 * nothing), and "any" has to be written out. Every field that is present is
 * checked; one present with an unusable value is refused, never skipped.
 */
export type IdentityConstraint = { mode: "ephemeral" } | { mode: "sealed"; kmsKeyArn: string };

export interface TrustConstraints {
  /** Allowed provider origins: "https://host[:port]" as URL.origin writes it, or "local" for the built-in model. */
  upstreamOrigins?: readonly string[];
  identity?: IdentityConstraint;
  secretsKmsKeyArn?: string;
  /** The AWS accounts (12 digits) a Bedrock provider of the policy may be pinned to. */
  awsAccounts?: readonly string[];
  /** Exact SHA-256 pins of the trust policy's bytes (32 bytes each). */
  policySha256?: readonly Uint8Array[];
}

export type TrustSetting = TrustConstraints | "any";

export const MAX_TRUST_LIST = 64;
const MAX_ORIGIN_CHARS = 2048;
const FIELDS = ["upstreamOrigins", "identity", "secretsKmsKeyArn", "awsAccounts", "policySha256"] as const;

const NOTHING_CONSTRAINED = 'trust constrains nothing: name upstreamOrigins, identity, secretsKmsKeyArn, awsAccounts or policySha256, or write "any" on purpose';

/** Why an allowed-origin entry is unusable, or undefined. Origins are compared as strings, so only the canonical form is accepted. */
export function originProblem(value: unknown): string | undefined {
  if (value === "local") return undefined;
  if (typeof value !== "string" || value === "" || value.length > MAX_ORIGIN_CHARS) return `expected "local" or an origin of at most ${MAX_ORIGIN_CHARS} characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value.slice(0, 80)}" is not a URL origin`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return `"${value.slice(0, 80)}" is not an http(s) origin`;
  if (url.origin !== value)
    return `"${value.slice(0, 80)}" is not written as an origin (expected "${url.origin.slice(0, 80)}": scheme and host in lower case, no path, no default port)`;
  return undefined;
}

function arnProblem(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length > 2048 || !KMS_KEY_ARN.test(value))
    return "expected a full KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); aliases and bare key ids are refused";
  return undefined;
}

/**
 * Reads a trust section from its JSON form (a manifest) or its programmatic
 * form (ClientPolicy: `policySha256` as bytes). `fail(where, message)` makes
 * the caller's error for a malformed field; an empty object, or none at all,
 * is ERR_POLICY_INVALID whatever the caller.
 */
export function readTrustSetting(value: unknown, form: "json" | "bytes", fail: (where: string, message: string) => ClientError): TrustSetting {
  if (value === undefined) throw new ClientError("ERR_POLICY_INVALID", `no trust section: ${NOTHING_CONSTRAINED}`);
  if (value === "any") return "any";
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw fail("trust", 'expected "any" or an object');
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!(FIELDS as readonly string[]).includes(key)) throw fail("trust", `unknown field "${key.slice(0, 64)}"`);
  const out: TrustConstraints = {};
  // `{ upstreamOrigins: undefined }` is a caller who lost the list on the way: refuse, never skip.
  const present = (key: (typeof FIELDS)[number]) => Object.hasOwn(o, key);

  if (present("upstreamOrigins")) {
    const list = o.upstreamOrigins;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_TRUST_LIST) throw fail("trust.upstreamOrigins", `expected 1..${MAX_TRUST_LIST} origins`);
    const seen = new Set<string>();
    out.upstreamOrigins = list.map((origin, i) => {
      const problem = originProblem(origin);
      if (problem) throw fail(`trust.upstreamOrigins[${i}]`, problem);
      if (seen.has(origin as string)) throw fail(`trust.upstreamOrigins[${i}]`, "listed twice");
      seen.add(origin as string);
      return origin as string;
    });
  }
  if (present("identity")) {
    const id = o.identity;
    if (id === null || typeof id !== "object" || Array.isArray(id)) throw fail("trust.identity", 'expected { "mode": "ephemeral" } or { "mode": "sealed", "kmsKeyArn": … }');
    const idObj = id as Record<string, unknown>;
    if (idObj.mode === "ephemeral") {
      if (Object.keys(idObj).length !== 1) throw fail("trust.identity", 'an ephemeral identity takes only "mode"');
      out.identity = { mode: "ephemeral" };
    } else if (idObj.mode === "sealed") {
      for (const key of Object.keys(idObj)) if (key !== "mode" && key !== "kmsKeyArn") throw fail("trust.identity", `unknown field "${key.slice(0, 64)}"`);
      const problem = arnProblem(idObj.kmsKeyArn);
      if (problem) throw fail("trust.identity.kmsKeyArn", `a sealed identity names its key: ${problem}`);
      out.identity = { mode: "sealed", kmsKeyArn: idObj.kmsKeyArn as string };
    } else {
      throw fail("trust.identity.mode", 'expected "ephemeral" or "sealed"');
    }
  }
  if (present("secretsKmsKeyArn")) {
    const problem = arnProblem(o.secretsKmsKeyArn);
    if (problem) throw fail("trust.secretsKmsKeyArn", problem);
    out.secretsKmsKeyArn = o.secretsKmsKeyArn as string;
  }
  if (present("awsAccounts")) {
    const list = o.awsAccounts;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_TRUST_LIST) throw fail("trust.awsAccounts", `expected 1..${MAX_TRUST_LIST} AWS account ids`);
    const seen = new Set<string>();
    out.awsAccounts = list.map((a, i) => {
      if (typeof a !== "string" || !/^\d{12}$/.test(a)) throw fail(`trust.awsAccounts[${i}]`, "expected a 12-digit AWS account id");
      if (seen.has(a)) throw fail(`trust.awsAccounts[${i}]`, "listed twice");
      seen.add(a);
      return a;
    });
  }
  if (present("policySha256")) {
    const list = o.policySha256;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_TRUST_LIST) throw fail("trust.policySha256", `expected 1..${MAX_TRUST_LIST} hashes`);
    const seen = new Set<string>();
    out.policySha256 = list.map((h, i) => {
      let bytes: Uint8Array;
      if (form === "json") {
        if (typeof h !== "string" || !/^[0-9a-fA-F]{64}$/.test(h)) throw fail(`trust.policySha256[${i}]`, "expected 64 hex digits");
        bytes = new Uint8Array(Buffer.from(h, "hex"));
      } else {
        if (!(h instanceof Uint8Array) || h.length !== 32) throw fail(`trust.policySha256[${i}]`, "expected 32 bytes");
        bytes = Uint8Array.from(h);
      }
      const key = Buffer.from(bytes).toString("hex");
      if (seen.has(key)) throw fail(`trust.policySha256[${i}]`, "listed twice");
      seen.add(key);
      return bytes;
    });
  }
  if (Object.keys(out).length === 0) throw new ClientError("ERR_POLICY_INVALID", NOTHING_CONSTRAINED);
  return out;
}

/** The JSON form of a trust section (manifest writers), in the schema's key order. */
export function trustJson(trust: TrustSetting): unknown {
  if (trust === "any") return "any";
  const out: Record<string, unknown> = {};
  if (trust.upstreamOrigins) out.upstreamOrigins = [...trust.upstreamOrigins];
  if (trust.identity) out.identity = trust.identity.mode === "ephemeral" ? { mode: "ephemeral" } : { mode: "sealed", kmsKeyArn: trust.identity.kmsKeyArn };
  if (trust.secretsKmsKeyArn !== undefined) out.secretsKmsKeyArn = trust.secretsKmsKeyArn;
  if (trust.awsAccounts) out.awsAccounts = [...trust.awsAccounts];
  if (trust.policySha256) out.policySha256 = trust.policySha256.map((h) => Buffer.from(h).toString("hex"));
  return out;
}

/** Lines a person can read: what a trust section requires (egw verify, egw manifest show). */
export function describeTrustConstraints(trust: TrustSetting): string[] {
  if (trust === "any") return ['trust: "any" — the trust policy is NOT constrained (upstream origins, identity and key ARNs are reported, not checked)'];
  const lines: string[] = [];
  lines.push(trust.upstreamOrigins ? `upstream origins allowed: ${trust.upstreamOrigins.join(", ")}` : "upstream origins: NOT constrained");
  lines.push(
    !trust.identity
      ? "identity: NOT constrained"
      : trust.identity.mode === "ephemeral"
        ? "identity required: ephemeral"
        : `identity required: sealed under ${trust.identity.kmsKeyArn}`,
  );
  lines.push(trust.secretsKmsKeyArn !== undefined ? `secrets KMS key required: ${trust.secretsKmsKeyArn}` : "secrets KMS key: NOT constrained");
  if (trust.awsAccounts) lines.push(`Bedrock AWS accounts allowed: ${trust.awsAccounts.join(", ")}`);
  lines.push(trust.policySha256 ? `trust policy sha256 pinned: ${trust.policySha256.map((h) => Buffer.from(h).toString("hex")).join(", ")}` : "trust policy sha256: not pinned");
  return lines;
}

/** What a section leaves open; "any" leaves every one open, a policy hash pin none. */
export function unconstrainedTrust(trust: TrustSetting): string[] {
  if (trust === "any") return ["trust policy (trust: any)"];
  // Exact bytes pinned: every destination the policy names was reviewed.
  if (trust.policySha256) return [];
  const open: string[] = [];
  if (!trust.upstreamOrigins) open.push("upstream origins");
  if (!trust.identity) open.push("identity");
  if (trust.secretsKmsKeyArn === undefined) open.push("secrets KMS key");
  return open;
}
