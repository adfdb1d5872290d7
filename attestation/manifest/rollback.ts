import { ClientError } from "../client/errors.js";

/**
 * Rollback protection for measurements manifests. A signature proves who
 * approved a manifest, not that it is the latest one: a mirror that fell
 * behind, or an attacker in the path, can hand a client an older manifest,
 * validly signed, that still lists an image withdrawn since (for a CVE, say).
 * Two optional top-level fields bound that; both are covered by the
 * signature, which is over the file's exact bytes (signature.ts):
 *
 *  - `sequence`: an integer 1..2^53-1 that strictly increases from one
 *    published manifest of a deployment to the next. A relying party pins a
 *    minimum (`minSequence`, `--policy-min-sequence`): a manifest without a
 *    sequence, or with a lower one, is ERR_MANIFEST_ROLLBACK. An equal one
 *    passes: it is the manifest the pin was taken from.
 *  - `expires`: "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC, whole seconds, a real
 *    calendar date, no leap second). The manifest is used while the client
 *    clock is before it, as with a JWT "exp" (RFC 7519 §4.1.4: "on or
 *    after which … MUST NOT be accepted"); from that instant on it is
 *    ERR_MANIFEST_EXPIRED. There is no clock-skew allowance: the publisher
 *    chooses the margin when choosing the time.
 *
 * The sequence stops a rollback below what the relying party already saw,
 * if it keeps its pin current; the expiry bounds how long any replayed
 * manifest works, even against a client that pins nothing. The clock is
 * always the caller's: nothing here reads the system time.
 */

/** Largest sequence: the largest integer a JSON number carries exactly into JavaScript. */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

const EXPIRES = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** What is wrong with a `sequence` value, or undefined when it is one. */
export function sequenceProblem(value: unknown): string | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 1 ? undefined : `expected an integer 1..${MAX_SEQUENCE}`;
}

/** What is wrong with an `expires` value, or undefined when it is one. */
export function expiresProblem(value: unknown): string | undefined {
  const expected = 'expected an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SSZ", e.g. "2026-12-01T00:00:00Z"';
  if (typeof value !== "string" || !EXPIRES.test(value)) return expected;
  // The round trip refuses what Date.parse would roll over (Feb 30, 24:00)
  // and what it refuses itself (second 60).
  const time = Date.parse(value);
  if (!Number.isFinite(time) || new Date(time).toISOString() !== `${value.slice(0, -1)}.000Z`) return `${expected}, naming a real date and time`;
  return undefined;
}

/** The instant of a well-formed `expires` value (check it with expiresProblem first). */
export function expiresAt(value: string): Date {
  const problem = expiresProblem(value);
  if (problem !== undefined) throw new ClientError("ERR_MANIFEST_INVALID", `manifest expires: ${problem}`);
  return new Date(Date.parse(value));
}

/** Formats an instant the way `expires` is written. */
export function formatExpires(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** A caller's clock reading: a valid Date, or ERR_POLICY_INVALID naming `name`. */
export function clockReading(value: unknown, name: string): Date {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) throw new ClientError("ERR_POLICY_INVALID", `${name} must give a valid Date`);
  return value;
}

/** A `minSequence` option: present means usable, or ERR_POLICY_INVALID. */
export function minSequenceOption(value: unknown): number {
  const problem = sequenceProblem(value);
  if (problem !== undefined) throw new ClientError("ERR_POLICY_INVALID", `minSequence is present but not usable: ${problem}`);
  return value as number;
}

/** Throws ERR_MANIFEST_EXPIRED when `now` is at or past `expires`. */
export function checkNotExpired(expires: Date, now: Date, what = "the manifest"): void {
  if (now.getTime() >= expires.getTime()) {
    throw new ClientError("ERR_MANIFEST_EXPIRED", `${what} expired at ${formatExpires(expires)} (client clock ${now.toISOString()}); fetch the current manifest`);
  }
}

/** Throws ERR_MANIFEST_ROLLBACK unless `sequence` is at least `minSequence`. */
export function checkMinSequence(sequence: number | undefined, minSequence: number, what = "the manifest"): void {
  if (sequence === undefined) {
    throw new ClientError("ERR_MANIFEST_ROLLBACK", `${what} carries no sequence, and sequence ${minSequence} or later is pinned`);
  }
  if (sequence < minSequence) {
    throw new ClientError("ERR_MANIFEST_ROLLBACK", `${what} has sequence ${sequence}, older than the pinned minimum ${minSequence}`);
  }
}

/**
 * The rollback checks on a parsed manifest, for callers that load one
 * themselves (loadPolicyFile runs them): the pinned minimum sequence, if
 * given, then the expiry at `now`.
 */
export function checkManifestRollback(manifest: { sequence?: number; expires?: string }, options: { now: Date; minSequence?: number }): void {
  const now = clockReading(options?.now, "now");
  if (Object.hasOwn(options, "minSequence")) checkMinSequence(manifest.sequence, minSequenceOption(options.minSequence));
  if (manifest.expires !== undefined) checkNotExpired(expiresAt(manifest.expires), now);
}
