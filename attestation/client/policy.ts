import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_CLOCK_SKEW_MS, DEFAULT_MAX_AGE_MS } from "../verify-options.js";
import { awsNitroRootG1, trustAnchorFromPem, type TrustAnchor } from "../roots.js";
import { ClientError } from "./errors.js";
import { parseReleaseInfo, type ReleaseInfo } from "./manifest-release.js";
import { checkManifestRollback, checkNotExpired, clockReading, expiresAt, expiresProblem, minSequenceOption, sequenceProblem } from "./manifest-rollback.js";
import { MANIFEST_SIGNATURE_SUFFIX, MAX_MANIFEST_SIGNATURE_BYTES, verifyManifestSignature, type VerifiedManifestSignature } from "./manifest-signature.js";
import { rejectDuplicateJsonKeys } from "./strict-json.js";
import { readTrustSetting, type TrustSetting } from "./trust-constraints.js";

/**
 * What a client accepts from a gateway before it sends a single byte.
 *
 * Fail closed: `measurements` and `trust` are required, and "any" must be
 * said on purpose (the CLI does so only when no manifest was given, and
 * reports it); a `trust` object that constrains nothing is refused. Trust
 * anchors default to the AWS Nitro root G1 alone; a development root is
 * trusted only when a policy names it, and it then *replaces* the AWS root,
 * so a development document can never pass under a production policy.
 */
export interface ClientPolicy {
  /** Allowed PCR sets. A document passes when it equals every PCR of at least one entry. */
  measurements: readonly MeasurementSet[] | "any";
  /**
   * What the attested trust policy must say (trust-constraints.ts): allowed
   * upstream origins, identity mode, secrets key ARN, exact hashes. Checked
   * before any request byte is sent, and every receipt's upstream against it.
   */
  trust: TrustSetting;
  /** Allowed SHA-256 hashes of the runtime config (32 bytes each). Absent: not checked, and reported so. */
  configSha256?: readonly Uint8Array[];
  /** Oldest acceptable document, and how long a connection's attestation is used. Default 300 000 ms. */
  maxAgeMs?: number;
  /** Accept debug-mode enclaves (PCR0 all zero). Default false. */
  allowDebug?: boolean;
  /** Trust anchors. Default: the AWS Nitro root G1 only. */
  trustedRoots?: readonly TrustAnchor[];
  /** How far a document timestamp may be ahead of the client clock. Default 60 000 ms. */
  clockSkewMs?: number;
  /**
   * When the policy stops being usable (a manifest's `expires`): from this
   * instant on it is refused with ERR_MANIFEST_EXPIRED when resolved, at
   * every attestation, and by the verified fetch before each request.
   * Absent: it does not expire. Present, it must be a valid Date.
   */
  expires?: Date;
}

export interface MeasurementSet {
  label: string;
  /** PCR index → 48-byte SHA-384 measurement. */
  pcrs: ReadonlyMap<number, Uint8Array>;
  /** Where the build came from (manifest `release`): reported, never used to decide. */
  release?: ReleaseInfo;
}

/** A ClientPolicy with every default applied and every value checked. */
export interface ResolvedPolicy {
  measurements: readonly MeasurementSet[] | "any";
  trust: TrustSetting;
  configSha256: readonly Uint8Array[] | undefined;
  maxAgeMs: number;
  allowDebug: boolean;
  trustedRoots: TrustAnchor[];
  clockSkewMs: number;
  expires: Date | undefined;
}

const PCR_BYTES = 48;
const MAX_ENTRIES = 64;
const MAX_LABEL = 128;
const MAX_AGE_SECONDS = 86_400;

function invalidPolicy(message: string): ClientError {
  return new ClientError("ERR_POLICY_INVALID", message);
}

function millis(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw invalidPolicy(`${name} must be a positive, finite number of milliseconds`);
  return value;
}

/**
 * Checks a ClientPolicy and applies defaults. Throws ERR_POLICY_INVALID;
 * never skips a check it cannot do. `now` is the caller's clock reading: a
 * policy with `expires` cannot be resolved without it, and is refused with
 * ERR_MANIFEST_EXPIRED when `now` is at or past that time.
 */
export function resolvePolicy(policy: ClientPolicy, now?: Date): ResolvedPolicy {
  if (policy === null || typeof policy !== "object") throw invalidPolicy("a policy is required");
  if (now !== undefined) clockReading(now, "now");
  const { measurements } = policy;
  if (measurements !== "any") {
    if (!Array.isArray(measurements) || measurements.length === 0) {
      throw invalidPolicy('measurements must list at least one allowed PCR set, or be "any" on purpose');
    }
    for (const [i, entry] of measurements.entries()) {
      if (!entry || typeof entry.label !== "string" || entry.label === "") throw invalidPolicy(`measurements[${i}] needs a label`);
      if (!(entry.pcrs instanceof Map) || entry.pcrs.size === 0) throw invalidPolicy(`measurements[${i}] (${entry.label}) names no PCR`);
      for (const [index, value] of entry.pcrs) {
        if (!Number.isInteger(index) || index < 0 || index > 31) throw invalidPolicy(`measurements[${i}] PCR index ${index} is not in 0..31`);
        if (!(value instanceof Uint8Array) || value.length !== PCR_BYTES) {
          throw invalidPolicy(`measurements[${i}] PCR${index} expected ${PCR_BYTES} bytes, got ${value instanceof Uint8Array ? value.length : typeof value}`);
        }
      }
    }
  }
  const trust = readTrustSetting(policy.trust, "bytes", (where, message) => invalidPolicy(`${where}: ${message}`));
  let configSha256: Uint8Array[] | undefined;
  if (Object.prototype.hasOwnProperty.call(policy, "configSha256")) {
    const list = policy.configSha256;
    // `{ configSha256: undefined }` is a caller who lost the list on the way: reject, never skip.
    if (!Array.isArray(list) || list.length === 0) throw invalidPolicy("configSha256 is present but not a non-empty list");
    configSha256 = list.map((h, i) => {
      if (!(h instanceof Uint8Array) || h.length !== 32) throw invalidPolicy(`configSha256[${i}] must be 32 bytes`);
      return h;
    });
  }
  if (policy.allowDebug !== undefined && typeof policy.allowDebug !== "boolean") throw invalidPolicy("allowDebug must be a boolean");
  const roots = policy.trustedRoots ?? [awsNitroRootG1()];
  if (!Array.isArray(roots) || roots.length === 0) throw invalidPolicy("trustedRoots must name at least one root");
  let expires: Date | undefined;
  if (Object.prototype.hasOwnProperty.call(policy, "expires")) {
    // `{ expires: undefined }` is a caller who lost the expiry on the way: reject, never skip.
    if (!(policy.expires instanceof Date) || !Number.isFinite(policy.expires.getTime())) throw invalidPolicy("expires is present but is not a valid Date");
    expires = new Date(policy.expires.getTime());
    if (now === undefined) throw invalidPolicy("the policy expires, so resolving it needs the current time (now)");
    checkNotExpired(expires, now, "the policy's manifest");
  }
  return {
    measurements,
    trust,
    configSha256,
    maxAgeMs: millis(policy.maxAgeMs, "maxAgeMs", DEFAULT_MAX_AGE_MS),
    allowDebug: policy.allowDebug ?? false,
    trustedRoots: [...roots],
    clockSkewMs: policy.clockSkewMs === undefined ? DEFAULT_CLOCK_SKEW_MS : millis(policy.clockSkewMs, "clockSkewMs", DEFAULT_CLOCK_SKEW_MS),
    expires,
  };
}

/** The first entry whose every PCR equals the document's, or undefined. */
export function matchMeasurements(sets: readonly MeasurementSet[], pcrs: ReadonlyMap<number, Uint8Array>): MeasurementSet | undefined {
  return sets.find((set) => {
    for (const [index, expected] of set.pcrs) {
      const actual = pcrs.get(index);
      if (!actual || !Buffer.from(actual).equals(Buffer.from(expected))) return false;
    }
    return true;
  });
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
 *     "policySha256": ["<64 hex digits>"] }, // optional, 1..64: exact trust-policy hashes
 *                                          // at least one of the four, or "trust": "any" on purpose
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
 * or lower case; the `release` formats are exact (manifest-release.ts).
 * `configSha256` is the config hash of the release(s): it applies to every
 * entry, so during a rollout it lists the old and the new config.
 *
 * `sequence` and `expires` guard against rollback to an older, validly
 * signed manifest (manifest-rollback.ts): `loadPolicyFile` refuses an
 * expired manifest and, when the caller pins `minSequence`, an older one;
 * the expiry travels into the policy, so a connection is never attested,
 * nor a request sent, under a manifest that has expired since it was loaded.
 *
 * `egw manifest create` writes this format (infra/release), and a manifest
 * may carry a detached signature `<file>.sig` (manifest-signature.ts) that
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
  const manifest: Omit<Manifest, "trust"> & { trust?: TrustSetting } = { version: 1, ...(sequence !== undefined && { sequence }), ...(expires !== undefined && { expires }), measurements, ...(trust !== undefined && { trust }) };
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

/**
 * The ClientPolicy a manifest describes. Trust anchors: `trustedRoots` if
 * given, else the AWS root. The manifest's `expires` becomes the policy's.
 * It checks no clock and no pinned sequence: loadPolicyFile does, and so
 * does checkManifestRollback for a manifest loaded some other way.
 */
export function policyFromManifest(manifest: Manifest, options: { trustedRoots?: readonly TrustAnchor[] } = {}): ClientPolicy {
  return {
    measurements: manifest.measurements,
    trust: manifest.trust,
    ...(manifest.expires !== undefined && { expires: expiresAt(manifest.expires) }),
    ...(manifest.configSha256 && { configSha256: manifest.configSha256 }),
    ...(manifest.maxAgeSeconds !== undefined && { maxAgeMs: manifest.maxAgeSeconds * 1000 }),
    ...(manifest.allowDebug !== undefined && { allowDebug: manifest.allowDebug }),
    ...(options.trustedRoots && { trustedRoots: options.trustedRoots }),
  };
}

const MAX_MANIFEST_BYTES = 1 << 20;

/** Reads a development root PEM file into a trust anchor labelled with its file name. */
export async function loadDevRoot(file: string): Promise<TrustAnchor> {
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (cause) {
    throw new ClientError("ERR_POLICY_INVALID", `development root ${file}: cannot read (${(cause as NodeJS.ErrnoException).code ?? "error"})`, { cause });
  }
  try {
    return trustAnchorFromPem(pem, `development root ${path.basename(file)}`);
  } catch (cause) {
    throw new ClientError("ERR_POLICY_INVALID", `development root ${file}: not a PEM certificate`, { cause });
  }
}

/** Options of `loadPolicyFile`. */
export interface LoadPolicyOptions {
  /**
   * The clock (required): a manifest whose `expires` is at or before now()
   * is ERR_MANIFEST_EXPIRED. The same function the verified fetch is given.
   */
  now: () => Date;
  /**
   * Refuse a manifest older than one already trusted: without a `sequence`,
   * or with a lower one, it is ERR_MANIFEST_ROLLBACK. An integer
   * 1..2^53-1; any other value present is ERR_POLICY_INVALID. Absent: any
   * sequence, or none, is accepted. Pin it together with `signedBy`: an
   * unsigned manifest's sequence is only as good as the channel it came over.
   */
  minSequence?: number;
  /** A development root given separately (e.g. --dev-root); must be the manifest's, if it names one. */
  devRootFile?: string;
  /**
   * Accept the manifest only with a valid detached signature
   * (manifest-signature.ts) by the key whose SPKI hashes to `spkiSha256`.
   * The signature is read from `signatureFile`, default `<file>.sig`.
   * Absent: the manifest is used unsigned, as before.
   */
  signedBy?: { spkiSha256: Uint8Array; signatureFile?: string };
}

export interface LoadedPolicy {
  manifest: Manifest;
  policy: ClientPolicy;
  devRoot: TrustAnchor | undefined;
  /** The verified signature, when `signedBy` was given. */
  signature: VerifiedManifestSignature | undefined;
}

/**
 * Reads at most `max` bytes of a file, refusing a larger one before reading
 * it. `onError` turns an I/O failure (or an oversized file) into the
 * caller's typed error.
 */
async function readBounded(file: string, max: number, onError: (reason: string, cause?: unknown) => ClientError): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (cause) {
    throw onError(`cannot read (${(cause as NodeJS.ErrnoException).code ?? "error"})`, cause);
  }
  try {
    const { size } = await handle.stat();
    if (size > max) throw onError(`${size} bytes is too large (at most ${max})`);
    // One byte more than allowed, so a file that grew since stat is still caught.
    const buffer = new Uint8Array(max + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > max) throw onError(`larger than ${max} bytes`);
    }
    return buffer.subarray(0, filled);
  } catch (cause) {
    if (cause instanceof ClientError) throw cause;
    throw onError(`cannot read (${(cause as NodeJS.ErrnoException).code ?? "error"})`, cause);
  } finally {
    await handle.close();
  }
}

/**
 * Loads a manifest file into a policy. The manifest's `devRootPem` is read
 * relative to the manifest's folder; `options.devRootFile` (e.g. a command
 * line flag) may name the same root, but two different roots are refused.
 *
 * With `options.signedBy`, the file's bytes are read once, the signature is
 * checked over exactly those bytes, and only then are they parsed: a
 * missing, malformed, foreign or failing signature is ERR_MANIFEST_SIGNATURE
 * and nothing of the manifest is used. The signature covers the manifest's
 * text, including a `devRootPem` path, not the file that path names.
 *
 * Then the rollback checks (manifest-rollback.ts): the pinned minimum
 * sequence (ERR_MANIFEST_ROLLBACK), then the expiry at `options.now()`
 * (ERR_MANIFEST_EXPIRED). A manifest refused for either is not used at all.
 */
export async function loadPolicyFile(file: string, options: LoadPolicyOptions): Promise<LoadedPolicy> {
  if (options === null || typeof options !== "object" || typeof options.now !== "function") {
    throw new ClientError("ERR_POLICY_INVALID", "loadPolicyFile needs options.now, the clock a manifest's expiry is checked against");
  }
  const minSequence = Object.prototype.hasOwnProperty.call(options, "minSequence") ? minSequenceOption(options.minSequence) : undefined;
  let signedBy: LoadPolicyOptions["signedBy"];
  if (Object.prototype.hasOwnProperty.call(options, "signedBy")) {
    // `{ signedBy: undefined }` is a caller who lost the pin on the way: reject, never skip.
    signedBy = options.signedBy;
    if (!signedBy || !(signedBy.spkiSha256 instanceof Uint8Array) || signedBy.spkiSha256.length !== 32) {
      throw new ClientError("ERR_POLICY_INVALID", "signedBy is present but is not { spkiSha256: <32 bytes> }");
    }
    if (signedBy.signatureFile !== undefined && (typeof signedBy.signatureFile !== "string" || signedBy.signatureFile === "")) {
      throw new ClientError("ERR_POLICY_INVALID", "signedBy.signatureFile must be a file path");
    }
  }
  const bytes = await readBounded(file, MAX_MANIFEST_BYTES, (reason, cause) => new ClientError("ERR_MANIFEST_INVALID", `manifest ${file}: ${reason}`, { cause }));
  let signature: VerifiedManifestSignature | undefined;
  if (signedBy) {
    const sigFile = signedBy.signatureFile ?? `${file}${MANIFEST_SIGNATURE_SUFFIX}`;
    const sigBytes = await readBounded(sigFile, MAX_MANIFEST_SIGNATURE_BYTES, (reason, cause) =>
      new ClientError("ERR_MANIFEST_SIGNATURE", `manifest signature ${sigFile}: ${reason}; a signing key is pinned, so the manifest is not used without its signature`, { cause }),
    );
    signature = await verifyManifestSignature(bytes, sigBytes, { spkiSha256: signedBy.spkiSha256 });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new ClientError("ERR_MANIFEST_INVALID", `manifest ${file}: not UTF-8 text`, { cause });
  }
  const manifest = parseManifest(text);
  try {
    checkManifestRollback(manifest, { now: clockReading(options.now(), "options.now()"), ...(minSequence !== undefined && { minSequence }) });
  } catch (err) {
    if (!(err instanceof ClientError) || err.code === "ERR_POLICY_INVALID") throw err;
    throw new ClientError(err.code, `manifest ${file}: ${err.message}`, { cause: err });
  }
  const fromManifest = manifest.devRootPem === undefined ? undefined : path.resolve(path.dirname(file), manifest.devRootPem);
  let devRoot: TrustAnchor | undefined;
  if (fromManifest !== undefined || options.devRootFile !== undefined) {
    const a = fromManifest === undefined ? undefined : await loadDevRoot(fromManifest);
    const b = options.devRootFile === undefined ? undefined : await loadDevRoot(options.devRootFile);
    if (a && b && a.sha256 !== b.sha256) {
      throw new ClientError("ERR_POLICY_INVALID", "the manifest's devRootPem and the development root given separately are different certificates");
    }
    devRoot = a ?? b;
  }
  return { manifest, policy: policyFromManifest(manifest, devRoot ? { trustedRoots: [devRoot] } : {}), devRoot, signature };
}
