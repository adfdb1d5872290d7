import { ClientError } from "../client/errors.js";
import { parseReleaseInfo } from "./release.js";
import { expiresProblem, sequenceProblem } from "./rollback.js";
import { matchMeasurements, type Manifest, type MeasurementSet } from "../client/policy.js";
import { readTrustSetting, trustJson, type TrustSetting } from "../client/trust-constraints.js";
import { parseTrustPolicy, trustPolicySha256, TrustPolicyError, upstreamOrigins } from "../trust-policy.js";
import { ReleaseError } from "./errors.js";

/**
 * Builds the measurements-manifest entry of one release from an EIF's
 * measurements (infra/review/eif/measure.ts computes them), and a manifest around
 * it, new or merged into an existing one. The format is the one the
 * verifying client reads (attestation/client/policy.ts); serializeManifest
 * (json.ts) writes it. Here in attestation/manifest/ with the format, the
 * signature and the rollback rules, so creation and checking cannot drift.
 */
/** An image's PCRs, as infra/review/eif/measure.ts computes them from an EIF. */
export interface ImageMeasurements {
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
  /** Present when the EIF is signed. */
  pcr8?: Uint8Array | undefined;
}

export interface ReleaseEntryInput {
  measurements: ImageMeasurements;
  /** SHA-384 of the EIF file's bytes (the metadata section makes it differ between rebuilds; the PCRs do not). */
  eifSha384: Uint8Array;
  version: string;
  gitCommit: string;
  imageDigest: string;
  builtAt?: string;
  /** Default: "egw <version> (<first 12 digits of the commit>)". */
  label?: string;
}

// Same bounds as parseManifest; the serialized manifest is parsed again anyway.
const MAX_LABEL = 128;
const MAX_ENTRIES = 64;
const MAX_CONFIG_HASHES = 64;

export function defaultLabel(version: string, gitCommit: string): string {
  return `egw ${version} (${gitCommit.slice(0, 12)})`;
}

export function releaseEntry(input: ReleaseEntryInput): MeasurementSet {
  if (!(input.eifSha384 instanceof Uint8Array) || input.eifSha384.length !== 48) throw new ReleaseError("ERR_RELEASE_INPUT", "eifSha384 must be 48 bytes");
  let release;
  try {
    release = parseReleaseInfo(
      {
        version: input.version,
        gitCommit: input.gitCommit,
        imageDigest: input.imageDigest,
        eifSha384: Buffer.from(input.eifSha384).toString("hex"),
        ...(input.builtAt !== undefined && { builtAt: input.builtAt }),
      },
      "release",
    );
  } catch (err) {
    if (err instanceof ClientError) throw new ReleaseError("ERR_RELEASE_INPUT", err.message, { cause: err });
    throw err;
  }
  const label = input.label ?? defaultLabel(release.version, release.gitCommit);
  if (label.trim() === "" || label.length > MAX_LABEL || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new ReleaseError("ERR_RELEASE_INPUT", `label must be 1..${MAX_LABEL} printable characters`);
  }
  // PCR0, 1, 2 always; PCR8 when the EIF is signed. An unsigned image's
  // PCR8 is all zero in the enclave and is left out rather than pinned.
  const m = input.measurements;
  const pcrs = new Map<number, Uint8Array>([
    [0, m.pcr0],
    [1, m.pcr1],
    [2, m.pcr2],
  ]);
  if (m.pcr8) pcrs.set(8, m.pcr8);
  return { label, pcrs, release };
}

function mergeConfigHashes(existing: readonly Uint8Array[], added: readonly Uint8Array[]): Uint8Array[] | undefined {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  for (const h of [...existing, ...added]) {
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new ReleaseError("ERR_RELEASE_INPUT", "a config hash must be 32 bytes (SHA-256)");
    const key = Buffer.from(h).toString("hex");
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(h);
  }
  if (out.length > MAX_CONFIG_HASHES) throw new ReleaseError("ERR_RELEASE_TOO_MANY", `at most ${MAX_CONFIG_HASHES} config hashes, would be ${out.length}`);
  return out.length === 0 ? undefined : out;
}

/**
 * The rollback fields of a new manifest (attestation/manifest/rollback.ts):
 * `sequence` 1..2^53-1, higher than every manifest published before for the
 * deployment; `expires` "YYYY-MM-DDTHH:MM:SSZ", after which clients stop
 * using it. Whether `expires` lies in the future is the caller's check: it
 * has the clock.
 */
export interface ManifestLifecycle {
  sequence?: number;
  expires?: string;
}

function lifecycleFields(lifecycle: ManifestLifecycle): ManifestLifecycle {
  const out: ManifestLifecycle = {};
  if (lifecycle.sequence !== undefined) {
    const problem = sequenceProblem(lifecycle.sequence);
    if (problem !== undefined) throw new ReleaseError("ERR_RELEASE_INPUT", `sequence: ${problem}`);
    out.sequence = lifecycle.sequence;
  }
  if (lifecycle.expires !== undefined) {
    const problem = expiresProblem(lifecycle.expires);
    if (problem !== undefined) throw new ReleaseError("ERR_RELEASE_INPUT", `expires: ${problem}`);
    out.expires = lifecycle.expires;
  }
  return out;
}

/**
 * The trust section a trust-policy file calls for: its provider origins,
 * its identity mode (and key), its secrets key; with `pinHash`, also the
 * SHA-256 of its exact bytes. Parsed under production rules unless `dev`
 * (a development policy may use http origins, which no production
 * enclave would accept). Throws ERR_RELEASE_INPUT naming the field.
 */
export function trustFromPolicyFile(bytes: Uint8Array, options: { dev: boolean; pinHash: boolean }): TrustSetting {
  let policy;
  try {
    policy = parseTrustPolicy(bytes, { dev: options.dev });
  } catch (err) {
    if (err instanceof TrustPolicyError) throw new ReleaseError("ERR_RELEASE_INPUT", err.message, { cause: err });
    throw err;
  }
  const identity = policy.identity.mode === "ephemeral" ? ({ mode: "ephemeral" } as const) : ({ mode: "sealed", kmsKeyArn: policy.identity.kmsKeyArn } as const);
  const awsAccounts = [...new Set(policy.providers.flatMap((p) => (p.bedrock ? [p.bedrock.accountId] : [])))];
  return {
    upstreamOrigins: upstreamOrigins(policy),
    identity,
    ...(policy.secrets && { secretsKmsKeyArn: policy.secrets.kmsKeyArn }),
    ...(awsAccounts.length > 0 && { awsAccounts }),
    ...(options.pinHash && { policySha256: [trustPolicySha256(bytes)] }),
  };
}

/** A trust section checked as the client will read it: never one that constrains nothing by accident. */
function checkedTrust(trust: TrustSetting | undefined): TrustSetting {
  if (trust === undefined) throw new ReleaseError("ERR_RELEASE_NO_TRUST", 'a manifest needs a trust section: derive it from the trust policy, or write "any" on purpose');
  try {
    return readTrustSetting(trustJson(trust), "json", (where, message) => new ClientError("ERR_MANIFEST_INVALID", `${where}: ${message}`));
  } catch (err) {
    if (err instanceof ClientError) throw new ReleaseError("ERR_RELEASE_INPUT", err.message, { cause: err });
    throw err;
  }
}

/** A manifest holding one release. No config hash: the client reports the config as unchecked. */
export function createManifest(entry: MeasurementSet, configSha256: readonly Uint8Array[] = [], lifecycle: ManifestLifecycle = {}, trust?: TrustSetting): Manifest {
  const fields = lifecycleFields(lifecycle);
  const configs = mergeConfigHashes([], configSha256);
  return { version: 1, ...fields, measurements: [entry], trust: checkedTrust(trust), ...(configs && { configSha256: configs }) };
}

/**
 * Appends a release to an existing manifest, for an overlapping rollout:
 * old and new images are both accepted until the old entry is removed.
 * Refused: a label already used, an image an existing entry already matches
 * (the new entry would never be the one reported, as the first match wins),
 * more than 64 entries. Config hashes are the union, old ones first: the
 * list applies to every entry. Other top-level fields are kept, except the
 * rollback fields, which describe one published manifest and are never
 * carried over:
 *  - `sequence`: if the existing manifest has one, the new one must be given
 *    and be higher (two different manifests with one sequence would let a
 *    client pinned to it accept either); if it has none, the new one is
 *    optional.
 *  - `expires`: if the existing manifest has one, a new one must be given
 *    (dropping it would make the merged manifest valid forever; keeping it
 *    would let it lapse with the old one unnoticed).
 * The trust section is the one given (it applies to every entry, like the
 * config hashes), else the existing manifest's.
 */
export function mergeManifest(
  existing: Manifest,
  entry: MeasurementSet,
  configSha256: readonly Uint8Array[] = [],
  lifecycle: ManifestLifecycle = {},
  trust?: TrustSetting,
): Manifest {
  const fields = lifecycleFields(lifecycle);
  if (existing.sequence !== undefined && (fields.sequence === undefined || fields.sequence <= existing.sequence)) {
    throw new ReleaseError(
      "ERR_RELEASE_SEQUENCE",
      fields.sequence === undefined
        ? `the manifest has sequence ${existing.sequence}; the merged one needs a higher sequence`
        : `sequence ${fields.sequence} does not increase on the manifest's ${existing.sequence}`,
    );
  }
  if (existing.expires !== undefined && fields.expires === undefined) {
    throw new ReleaseError("ERR_RELEASE_EXPIRES", `the manifest expires at ${existing.expires}; the merged one needs its own expiry`);
  }
  if (existing.measurements.some((e) => e.label === entry.label)) {
    throw new ReleaseError("ERR_RELEASE_DUPLICATE_LABEL", `the manifest already has an entry labelled "${entry.label}"`);
  }
  const shadow = matchMeasurements(existing.measurements, entry.pcrs);
  if (shadow) throw new ReleaseError("ERR_RELEASE_DUPLICATE_IMAGE", `the manifest's entry "${shadow.label}" already matches this image`);
  if (existing.measurements.length + 1 > MAX_ENTRIES) throw new ReleaseError("ERR_RELEASE_TOO_MANY", `a manifest holds at most ${MAX_ENTRIES} entries`);
  const configs = mergeConfigHashes(existing.configSha256 ?? [], configSha256);
  const { sequence: _oldSequence, expires: _oldExpires, ...rest } = existing;
  const merged: Manifest = { ...rest, ...fields, measurements: [...existing.measurements, entry], trust: checkedTrust(trust ?? existing.trust) };
  if (configs) merged.configSha256 = configs;
  return merged;
}
