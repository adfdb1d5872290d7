import type { MeasurementSet } from "../../../attestation/client/policy.js";

/**
 * The explicit Denies that make a key release nothing to an enclave outside
 * the manifest, whatever else allows it (a grant, a later Allow): IAM
 * evaluates every Deny before any Allow (IAM User Guide, "Policy evaluation
 * logic"), so these bound every path to Decrypt / GenerateDataKey*, not only
 * the Allow statements this policy writes.
 *
 * Why one Deny per PCR index: a condition with several values for one key is
 * an OR, and with a negated operator (StringNotEqualsIgnoreCase) it holds when
 * the request's value is none of them; several keys in one block are an AND.
 * So "Deny unless (PCR0,PCR1,PCR2) is one of the sets" cannot be one
 * statement; "Deny unless PCR<n> is one of the allowed values for n", for
 * each n, is. A negated operator is also true when the key is absent (no
 * Recipient, or an attestation without that PCR), so these Denies also cover
 * requests without any attestation.
 *
 * What that is equal to: the per-index Denies admit the product of the
 * per-index value lists, which is wider than the list of sets when the sets
 * differ in more than one index. When every set pins PCR0 and the other
 * denied indexes are PCR1/PCR2 it is equivalent in practice: PCR0 is the
 * digest of the whole image, of which PCR1 and PCR2 digest parts, so an
 * image with an allowed PCR0 has that set's PCR1 and PCR2. For PCR3 (role),
 * PCR4 (instance) and PCR8 (signing certificate), which vary independently
 * of the image, the product is weaker: `residual` says so, and the exact
 * combination is then enforced only by the Allow statements (one per set).
 *
 * Only indexes that every set pins can be denied this way: a Deny on PCR3
 * would refuse a set that does not list PCR3. If no index is common to all
 * sets, no such Deny exists and the policy is refused (fail closed).
 */

export interface MeasurementDeny {
  /** PCR index → the distinct allowed values (lower-case hex), in manifest order. */
  allowed: Map<number, string[]>;
  /** Indexes some sets pin but not all: enforced by the Allow statements only. */
  notDenied: number[];
  /** Why the Denies admit more than the exact sets, or undefined when they do not. */
  residual: string | undefined;
}

const hex = (v: Uint8Array) => Buffer.from(v).toString("hex");

export function measurementDeny(sets: readonly MeasurementSet[]): MeasurementDeny | undefined {
  const all = new Set<number>(sets.flatMap((s) => [...s.pcrs.keys()]));
  const common = [...all].filter((i) => sets.every((s) => s.pcrs.has(i))).sort((a, b) => a - b);
  if (common.length === 0) return undefined;
  const allowed = new Map<number, string[]>();
  for (const i of common) allowed.set(i, [...new Set(sets.map((s) => hex(s.pcrs.get(i)!)))]);
  const tuples = new Set(sets.map((s) => common.map((i) => hex(s.pcrs.get(i)!)).join(",")));
  const product = [...allowed.values()].reduce((n, v) => n * v.length, 1);
  // Indexes the image (PCR0) does not decide, with more than one allowed value: their combinations are free.
  const independent = common.filter((i) => i !== 0 && !(allowed.has(0) && (i === 1 || i === 2)) && allowed.get(i)!.length > 1);
  let residual: string | undefined;
  if (product > tuples.size && independent.length > 0) {
    residual =
      `the per-PCR Denies admit ${product} combinations of ${common.map((i) => `PCR${i}`).join("/")} for ${tuples.size} measurement sets` +
      ` (PCR${independent.join(", PCR")} vary independently of the image): a grant or other Allow on this key` +
      " is bounded by those lists, not by the exact sets; only the Allow statements here match sets exactly";
  }
  return { allowed, notDenied: [...all].filter((i) => !common.includes(i)).sort((a, b) => a - b), residual };
}
