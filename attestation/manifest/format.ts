import { ClientError } from "../client/errors.js";
import { rejectDuplicateJsonKeys } from "../client/strict-json.js";
import { readTrustSetting, type TrustSetting } from "../client/trust-constraints.js";
import { parseReleaseInfo, type ReleaseInfo } from "./release.js";
import { expiresProblem, sequenceProblem } from "./rollback.js";

/**
 * The release manifest's format: its types and its strict parse. The
 * verifying client reads it (attestation/client/policy.ts turns a manifest
 * into a policy), `egw manifest create` writes it (create.ts, json.ts), and
 * signature.ts / sign.ts and rollback.ts hold its signature and rollback
 * rules: one folder for the whole format, importing nothing of ours
 * outside attestation/.
 */
export const PCR_BYTES = 48;
export const MAX_ENTRIES = 64;
export const MAX_LABEL = 128;
export const MAX_AGE_SECONDS = 86_400;

export interface MeasurementSet {
  label: string;
  /** PCR index → 48-byte SHA-384 measurement. */
  pcrs: ReadonlyMap<number, Uint8Array>;
  /** Where the build came from (manifest `release`): reported, never used to decide. */
  release?: ReleaseInfo;
}

// ─── Measurements manifest ───────────────────────────────────────────────

/**
 * A measurements manifest: the reviewed list of enclave builds a relying
 * party accepts, as a JSON file. Schema (version 1); every field not listed
 * here is refused, and so is a repeated key:
 *
 * ```jsonc
 * {
 *   "version": 1,                          // required, exactly 1
 *   "sequence": 7,                         // optional, integer 1..2^53-1: strictly increasing from one
 *                                          // published manifest of a deployment to the next; a client
 *                                          // pinning a minimum refuses a lower or missing one
 *   "expires": "2026-12-01T00:00:00Z",     // optional, RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" exactly:
 *                                          // from this instant on the manifest is not used
 *   "measurements": [                      // required, 1..64 entries
 *     { "label": "egw 0.1.0 release build", // required, 1..128 characters, unique
 *       "pcrs": {                          // required, 1..32 entries
 *         "0": "<96 hex digits>",          // key: PCR index "0".."31" (decimal, no leading zero)
 *         "1": "<96 hex digits>",          // value: the 48-byte SHA-384 measurement
 *         "2": "<96 hex digits>",
 *         "8": "<96 hex digits>" },        // PCR8 (signed EIFs): pins the EIF signing certificate
 *       "release": {                       // optional: provenance, reported but never used to decide
 *         "version": "0.1.0",              // required, SemVer 2.0.0, at most 64 characters
 *         "gitCommit": "<40 hex digits>",  // required, lowercase; 64 for SHA-256 repositories
 *         "imageDigest": "sha256:<64 hex>",// required, lowercase: the OCI image the EIF was built from
 *         "eifSha384": "<96 hex digits>",  // optional, lowercase: SHA-384 of the EIF file
 *         "builtAt": "2026-11-25T12:00:00Z" } } // optional, RFC 3339 (upper-case T and Z, or ±hh:mm)
 *   ],
 *   "trust": {                             // required: what the attested trust policy may say
 *     "upstreamOrigins": ["https://api.openai.com", "local"], // optional, 1..64: every provider origin
 *     "identity": { "mode": "ephemeral" }, // optional; or { "mode": "sealed", "kmsKeyArn": "arn:aws:kms:…" }
 *     "secretsKmsKeyArn": "arn:aws:kms:…", // optional: the key that releases provider keys
 *     "awsAccounts": ["111122223333"],     // optional, 1..64: accounts a Bedrock provider may be pinned to
 *                                          // (required for a policy with Bedrock, unless policySha256 pins it)
 *     "policySha256": ["<64 hex digits>"] }, // optional, 1..64: exact trust-policy hashes
 *                                          // at least one of these, or "trust": "any" on purpose
 *   "configSha256": ["<64 hex digits>"],   // optional, 1..64 unique entries: the attested
 *                                          // deployment hash (trust policy + operations + sealed
 *                                          // file, host/transport/codec/config-hash.ts) must be one of them
 *   "maxAgeSeconds": 300,                  // optional, 1..86400, default 300: oldest document
 *                                          // accepted, and how long a connection's attestation is used
 *   "allowDebug": false,                   // optional, default false: accept PCR0 all zero
 *   "devRootPem": "dev-root.pem"           // optional: a development root certificate (PEM),
 *                                          // path relative to the manifest; it REPLACES the AWS root
 * }
 * ```
 *
 * A document matches an entry when it carries every PCR the entry lists,
 * with equal bytes; PCRs the entry does not list are not compared. The
 * first matching entry's label is reported. PCR and config hex may be upper
 * or lower case; the `release` formats are exact (release.ts).
 * `configSha256` is the config hash of the release(s): it applies to every
 * entry, so during a rollout it lists the old and the new config.
 *
 * `sequence` and `expires` guard against rollback to an older, validly
 * signed manifest (rollback.ts): `loadPolicyFile` refuses an
 * expired manifest and, when the caller pins `minSequence`, an older one;
 * the expiry travels into the policy, so a connection is never attested,
 * nor a request sent, under a manifest that has expired since it was loaded.
 *
 * `egw manifest create` writes this format (attestation/manifest/create.ts), and a manifest
 * may carry a detached signature `<file>.sig` (signature.ts) that
 * `loadPolicyFile` requires when the caller pins a signing key.
 */
export interface Manifest {
  version: 1;
  /** Strictly increasing per published manifest of a deployment. */
  sequence?: number;
  /** As written in the file ("YYYY-MM-DDTHH:MM:SSZ"); `expiresAt` gives the instant. */
  expires?: string;
  measurements: MeasurementSet[];
  /** Required: the trust section (trust-constraints.ts). */
  trust: TrustSetting;
  configSha256?: Uint8Array[];
  maxAgeSeconds?: number;
  allowDebug?: boolean;
  /** As written in the file; `loadPolicyFile` resolves it against the manifest's folder. */
  devRootPem?: string;
}

const TOP_KEYS = new Set(["version", "sequence", "expires", "measurements", "trust", "configSha256", "maxAgeSeconds", "allowDebug", "devRootPem"]);
const ENTRY_KEYS = new Set(["label", "pcrs", "release"]);

function invalid(where: string, message: string): ClientError {
  return new ClientError("ERR_MANIFEST_INVALID", `manifest ${where}: ${message}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyKeys(obj: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) throw invalid(where, `unknown field "${key.slice(0, 64)}"`);
  }
}

function hexBytes(value: unknown, length: number, where: string): Uint8Array {
  if (typeof value !== "string") throw invalid(where, `expected a string of ${length * 2} hex digits`);
  if (!/^[0-9a-fA-F]*$/.test(value)) throw invalid(where, "expected hex digits only");
  if (value.length !== length * 2) throw invalid(where, `expected ${length * 2} hex digits, got ${value.length}`);
  return new Uint8Array(Buffer.from(value, "hex"));
}

/**
 * Parses a manifest from its JSON text (or an already parsed value, which
 * cannot be checked for repeated keys). Throws ERR_MANIFEST_INVALID naming
 * the field at fault; a manifest without a trust section, or with one that
 * constrains nothing, is ERR_POLICY_INVALID (as a ClientPolicy would be).
 */
export function parseManifest(input: string | unknown): Manifest {
  return parseManifestWith(input, true) as Manifest;
}

/**
 * For tools that compare an image's PCRs with a manifest and decide nothing
 * about a gateway (`egw measure --manifest`, the instance's pre-start check
 * of the EIF against the key policy's measurements): the same parse, every
 * field checked as above, except that a missing `trust` section is allowed
 * (a present one must still be valid). Never use the result as a client
 * policy: it is not a Manifest.
 */
export function parseMeasurementsManifest(input: string | unknown): Omit<Manifest, "trust"> & { trust?: TrustSetting } {
  return parseManifestWith(input, false);
}

function parseManifestWith(input: string | unknown, trustRequired: boolean): Omit<Manifest, "trust"> & { trust?: TrustSetting } {
  let value: unknown = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (cause) {
      throw new ClientError("ERR_MANIFEST_INVALID", `manifest is not JSON (${(cause as Error).message})`, { cause });
    }
    rejectDuplicateJsonKeys(input, (key) => invalid("", `field "${key.slice(0, 64)}" appears twice in one object`));
  }
  if (!isPlainObject(value)) throw invalid("(top level)", "expected an object");
  onlyKeys(value, TOP_KEYS, "(top level)");
  if (value.version !== 1) throw invalid("version", "must be 1");
  // Read before the entries: a refusal names the field even when the entries are fine.
  let sequence: number | undefined;
  if (value.sequence !== undefined) {
    const problem = sequenceProblem(value.sequence);
    if (problem !== undefined) throw invalid("sequence", problem);
    sequence = value.sequence as number;
  }
  let expires: string | undefined;
  if (value.expires !== undefined) {
    const problem = expiresProblem(value.expires);
    if (problem !== undefined) throw invalid("expires", problem);
    expires = value.expires as string;
  }

  const list = value.measurements;
  if (!Array.isArray(list) || list.length === 0) throw invalid("measurements", "expected a non-empty array");
  if (list.length > MAX_ENTRIES) throw invalid("measurements", `at most ${MAX_ENTRIES} entries, got ${list.length}`);
  const labels = new Set<string>();
  const measurements = list.map((entry, i): MeasurementSet => {
    const where = `measurements[${i}]`;
    if (!isPlainObject(entry)) throw invalid(where, "expected an object");
    onlyKeys(entry, ENTRY_KEYS, where);
    const { label, pcrs, release } = entry;
    if (typeof label !== "string" || label.trim() === "" || label.length > MAX_LABEL || /[\u0000-\u001f\u007f]/.test(label)) {
      throw invalid(`${where}.label`, `expected 1..${MAX_LABEL} printable characters`);
    }
    if (labels.has(label)) throw invalid(`${where}.label`, `"${label}" is used twice`);
    labels.add(label);
    if (!isPlainObject(pcrs) || Object.keys(pcrs).length === 0) throw invalid(`${where}.pcrs`, "expected an object naming at least one PCR");
    const map = new Map<number, Uint8Array>();
    for (const [key, hex] of Object.entries(pcrs)) {
      if (!/^(0|[1-9]\d?)$/.test(key) || Number(key) > 31) throw invalid(`${where}.pcrs`, `"${key.slice(0, 8)}" is not a PCR index 0..31`);
      map.set(Number(key), hexBytes(hex, PCR_BYTES, `${where}.pcrs.${key}`));
    }
    const set: MeasurementSet = { label, pcrs: new Map([...map].sort((a, b) => a[0] - b[0])) };
    if (release !== undefined) set.release = parseReleaseInfo(release, `${where}.release`);
    return set;
  });

  let trust: TrustSetting | undefined;
  try {
    if (trustRequired || value.trust !== undefined) trust = readTrustSetting(value.trust, "json", (where, message) => invalid(where, message));
  } catch (err) {
    if (err instanceof ClientError && err.code === "ERR_POLICY_INVALID") throw new ClientError("ERR_POLICY_INVALID", `manifest trust: ${err.message}`);
    throw err;
  }
  const manifest: Omit<Manifest, "trust"> & { trust?: TrustSetting } = {
    version: 1,
    ...(sequence !== undefined && { sequence }),
    ...(expires !== undefined && { expires }),
    measurements,
    ...(trust !== undefined && { trust }),
  };
  if (value.configSha256 !== undefined) {
    const hashes = value.configSha256;
    if (!Array.isArray(hashes) || hashes.length === 0 || hashes.length > MAX_ENTRIES) {
      throw invalid("configSha256", `expected 1..${MAX_ENTRIES} hashes`);
    }
    const seen = new Set<string>();
    manifest.configSha256 = hashes.map((h, i) => {
      const bytes = hexBytes(h, 32, `configSha256[${i}]`);
      const key = Buffer.from(bytes).toString("hex");
      if (seen.has(key)) throw invalid(`configSha256[${i}]`, "listed twice");
      seen.add(key);
      return bytes;
    });
  }
  if (value.maxAgeSeconds !== undefined) {
    const s = value.maxAgeSeconds;
    if (typeof s !== "number" || !Number.isFinite(s) || s <= 0 || s > MAX_AGE_SECONDS) throw invalid("maxAgeSeconds", `expected a number in (0, ${MAX_AGE_SECONDS}]`);
    manifest.maxAgeSeconds = s;
  }
  if (value.allowDebug !== undefined) {
    if (typeof value.allowDebug !== "boolean") throw invalid("allowDebug", "expected true or false");
    manifest.allowDebug = value.allowDebug;
  }
  if (value.devRootPem !== undefined) {
    if (typeof value.devRootPem !== "string" || value.devRootPem === "" || value.devRootPem.length > 4096) throw invalid("devRootPem", "expected a file path");
    manifest.devRootPem = value.devRootPem;
  }
  return manifest;
}
