import { KMS_KEY_ARN, parseTrustPolicy, TrustPolicyError, type TrustPolicy } from "../../../attestation/trust-policy.js";
import { defaultRoutes } from "./default-routes.js";
import { DevError } from "./dev-error.js";
import { messageWithPointer } from "./json-pointer.js";
import type { ConfigDocument } from "./user-config.js";

/**
 * A user's trust policy, made ready for `egw dev`. It is parsed under the
 * development rules (attestation/trust-policy.ts `dev: true`: http origins
 * and base-URL overrides of first-party kinds allowed, because a simulated
 * enclave's documents chain to a development root no production client
 * trusts); the enclave with the real NSM parses the same bytes under the
 * production rules and refuses such a file (test/infra/dev-config.test.ts).
 *
 * egw dev adds to it only what it must, and says so:
 *  - default model routes for a first-party provider no route targets
 *    (default-routes.ts), so /v1/models lists it;
 *  - `secrets.kmsKeyArn` when providers name secrets but no key does (a
 *    development-only policy): the local KMS's key.
 * With nothing to add, the bytes are used as they are (a policy file keeps
 * its hash); otherwise the result is 2-space JSON.
 *
 * The local KMS plays the policy's own key (same ARN), so a production
 * policy boots unchanged; it can play `arn:aws:kms:<region>:<account>:key/<uuid>`.
 */
export interface LocalKmsKey {
  region: string;
  account: string;
  keyId: string;
}

export interface PreparedTrustPolicy {
  bytes: Uint8Array;
  policy: TrustPolicy;
  /** The key the local KMS must answer as. */
  kmsKey: LocalKmsKey;
  /** What egw dev added, for the banner. */
  notes: string[];
}

/** The parser's error, with the file and the JSON pointer of the field. */
export function trustPolicyError(doc: Pick<ConfigDocument, "file" | "pointer">, err: unknown): never {
  if (err instanceof TrustPolicyError) {
    throw new DevError("ERR_DEV_CONFIG", `${doc.file}: ${messageWithPointer(err.message, "trust policy", doc.pointer)} (${err.code})`, { cause: err });
  }
  throw err;
}

function parseDev(doc: Pick<ConfigDocument, "file" | "pointer">, bytes: Uint8Array): TrustPolicy {
  try {
    return parseTrustPolicy(bytes, { dev: true });
  } catch (err) {
    trustPolicyError(doc, err);
  }
}

/** The local KMS key for a policy's `secrets.kmsKeyArn`: only plain `aws` partition UUID keys (the local KMS's shape). */
function playableKey(doc: ConfigDocument, arn: string): LocalKmsKey {
  const m = KMS_KEY_ARN.exec(arn);
  const keyId = arn.slice(arn.lastIndexOf("/") + 1);
  if (!m || m[1] !== "aws" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(keyId)) {
    throw new DevError(
      "ERR_DEV_CONFIG",
      `${doc.file}: ${doc.pointer}/secrets/kmsKeyArn: egw dev's local KMS can play only arn:aws:kms:<region>:<account>:key/<uuid> keys (not multi-Region or other partitions)`,
    );
  }
  return { region: m[2]!, account: m[3]!, keyId };
}

export function prepareTrustPolicy(doc: ConfigDocument, devKey: { arn: string; key: LocalKmsKey }): PreparedTrustPolicy {
  const first = parseDev(doc, doc.bytes);
  if (first.identity.mode === "sealed") {
    throw new DevError(
      "ERR_DEV_CONFIG",
      `${doc.file}: ${doc.pointer}/identity/mode: egw dev runs an ephemeral identity only; a sealed identity needs "egw host --generate-identity" and real KMS (docs/IDENTITY.md)`,
    );
  }
  const raw: Record<string, unknown> = structuredClone(doc.raw);
  const notes: string[] = [];
  const models = (raw.models ?? {}) as Record<string, { provider?: unknown }>;
  const added = defaultRoutes(first.providers, models);
  if (Object.keys(added).length > 0) {
    raw.models = { ...models, ...added };
    const byProvider = new Map<string, string[]>();
    for (const [name, r] of Object.entries(added)) byProvider.set(r.provider, [...(byProvider.get(r.provider) ?? []), name]);
    for (const [p, names] of byProvider) notes.push(`added default routes for provider ${p} (no route named it): ${names.join(", ")}`);
  }
  const usesSecrets = first.providers.some((p) => p.secret !== undefined);
  let kmsKey = devKey.key;
  if (first.secrets) kmsKey = playableKey(doc, first.secrets.kmsKeyArn);
  else if (usesSecrets) {
    raw.secrets = { kmsKeyArn: devKey.arn };
    notes.push(`added secrets.kmsKeyArn ${devKey.arn} (the local KMS key): providers name secrets but no key was named`);
  }
  if (notes.length === 0) return { bytes: doc.bytes, policy: first, kmsKey, notes };
  const bytes = new TextEncoder().encode(`${JSON.stringify(raw, null, 2)}\n`);
  return { bytes, policy: parseDev(doc, bytes), kmsKey, notes };
}
