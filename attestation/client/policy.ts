import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_CLOCK_SKEW_MS, DEFAULT_MAX_AGE_MS } from "../verify-options.js";
import { awsNitroRootG1, trustAnchorFromPem, type TrustAnchor } from "../roots.js";
import { ClientError } from "./errors.js";
import { checkManifestRollback, checkNotExpired, clockReading, expiresAt, minSequenceOption } from "../manifest/rollback.js";
import { MANIFEST_SIGNATURE_SUFFIX, MAX_MANIFEST_SIGNATURE_BYTES, verifyManifestSignature, type VerifiedManifestSignature } from "../manifest/signature.js";
import { readTrustSetting, type TrustSetting } from "./trust-constraints.js";
import { PCR_BYTES, parseManifest, type Manifest, type MeasurementSet } from "../manifest/format.js";

// The manifest format lives with its signature, rollback and creation rules in attestation/manifest/.
export { parseManifest, parseMeasurementsManifest, type Manifest, type MeasurementSet } from "../manifest/format.js";

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
  if (Object.hasOwn(policy, "configSha256")) {
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
  if (Object.hasOwn(policy, "expires")) {
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
   * (attestation/manifest/signature.ts) by the key whose SPKI hashes to `spkiSha256`.
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
 * Then the rollback checks (attestation/manifest/rollback.ts): the pinned minimum
 * sequence (ERR_MANIFEST_ROLLBACK), then the expiry at `options.now()`
 * (ERR_MANIFEST_EXPIRED). A manifest refused for either is not used at all.
 */
export async function loadPolicyFile(file: string, options: LoadPolicyOptions): Promise<LoadedPolicy> {
  if (options === null || typeof options !== "object" || typeof options.now !== "function") {
    throw new ClientError("ERR_POLICY_INVALID", "loadPolicyFile needs options.now, the clock a manifest's expiry is checked against");
  }
  const minSequence = Object.hasOwn(options, "minSequence") ? minSequenceOption(options.minSequence) : undefined;
  let signedBy: LoadPolicyOptions["signedBy"];
  if (Object.hasOwn(options, "signedBy")) {
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
    const sigBytes = await readBounded(
      sigFile,
      MAX_MANIFEST_SIGNATURE_BYTES,
      (reason, cause) =>
        new ClientError("ERR_MANIFEST_SIGNATURE", `manifest signature ${sigFile}: ${reason}; a signing key is pinned, so the manifest is not used without its signature`, {
          cause,
        }),
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
