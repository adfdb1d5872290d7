import { ClientError } from "../client/errors.js";

/**
 * The optional `release` object of a measurements-manifest entry: which
 * release of which source a PCR set was built from. It is provenance for a
 * reviewer (what to rebuild, which image to pull), never a reason to accept
 * a document: the client decides on PCRs alone, and only reports the
 * release of the entry that matched.
 *
 * Each format is exact, so two tools can never read one value two ways:
 *  - version      SemVer 2.0.0 (no leading "v"), at most 64 characters
 *  - gitCommit    40 lowercase hex digits (a SHA-1 object name), or 64 (SHA-256 object format)
 *  - imageDigest  "sha256:" + 64 lowercase hex digits: an OCI content digest
 *                 (OCI image spec, descriptor.md, "Digests": sha256 is lowercase hex)
 *  - eifSha384    optional, 96 lowercase hex digits: SHA-384 of the EIF file's bytes
 *  - builtAt      optional, RFC 3339 date-time with upper-case "T" and "Z" or a
 *                 ±hh:mm offset, a real calendar date, seconds 00..59 (leap seconds refused)
 */
export interface ReleaseInfo {
  version: string;
  gitCommit: string;
  imageDigest: string;
  eifSha384?: string;
  builtAt?: string;
}

/** Order in which the fields are written (attestation/manifest/create.ts) and documented. */
export const RELEASE_KEYS = ["version", "gitCommit", "imageDigest", "eifSha384", "builtAt"] as const;
const ALLOWED = new Set<string>(RELEASE_KEYS);

const MAX_VERSION = 64;
const MAX_BUILT_AT = 35; // "2026-11-25T12:00:00.123456789+05:30"

// The regular expression semver.org gives for SemVer 2.0.0. Inputs are
// bounded to 64 characters before it runs.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const GIT_COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const IMAGE_DIGEST = /^sha256:[0-9a-f]{64}$/;
const SHA384_HEX = /^[0-9a-f]{96}$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))$/;

function invalid(where: string, message: string): ClientError {
  return new ClientError("ERR_MANIFEST_INVALID", `manifest ${where}: ${message}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** True for an RFC 3339 date-time as documented above. */
export function isRfc3339(value: string): boolean {
  if (value.length > MAX_BUILT_AT) return false;
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  if (m[8] !== "Z" && (Number(m[10]) > 23 || Number(m[11]) > 59)) return false;
  return true;
}

const FIELDS: Record<(typeof RELEASE_KEYS)[number], { check: (s: string) => boolean; expected: string }> = {
  version: { check: (s) => s.length <= MAX_VERSION && SEMVER.test(s), expected: `a SemVer 2.0.0 version of at most ${MAX_VERSION} characters, e.g. "0.1.0"` },
  gitCommit: { check: (s) => GIT_COMMIT.test(s), expected: "a full git commit id: 40 (or 64) lowercase hex digits" },
  imageDigest: { check: (s) => IMAGE_DIGEST.test(s), expected: 'an OCI digest "sha256:" followed by 64 lowercase hex digits' },
  eifSha384: { check: (s) => SHA384_HEX.test(s), expected: "96 lowercase hex digits (SHA-384 of the EIF file)" },
  builtAt: { check: isRfc3339, expected: 'an RFC 3339 date-time such as "2026-11-25T12:00:00Z"' },
};

/** What is wrong with one release field's value, or undefined when it is well-formed. */
export function releaseFieldProblem(field: (typeof RELEASE_KEYS)[number], value: unknown): string | undefined {
  const { check, expected } = FIELDS[field];
  return typeof value === "string" && check(value) ? undefined : `expected ${expected}`;
}

function field(value: Record<string, unknown>, name: (typeof RELEASE_KEYS)[number], where: string): string {
  const problem = releaseFieldProblem(name, value[name]);
  if (problem !== undefined) throw invalid(`${where}.${name}`, problem);
  return value[name] as string;
}

/**
 * Checks a manifest entry's `release` object (`where` is its path, e.g.
 * "measurements[0].release"). Throws ERR_MANIFEST_INVALID naming the field.
 */
export function parseReleaseInfo(value: unknown, where: string): ReleaseInfo {
  if (!isPlainObject(value)) throw invalid(where, "expected an object");
  for (const key of Object.keys(value)) {
    if (!ALLOWED.has(key)) throw invalid(where, `unknown field "${key.slice(0, 64)}"`);
  }
  const release: ReleaseInfo = {
    version: field(value, "version", where),
    gitCommit: field(value, "gitCommit", where),
    imageDigest: field(value, "imageDigest", where),
  };
  if (value.eifSha384 !== undefined) release.eifSha384 = field(value, "eifSha384", where);
  if (value.builtAt !== undefined) release.builtAt = field(value, "builtAt", where);
  return release;
}
