import { decodeBinding, type ChannelBinding } from "../binding.js";
import { decodeCoseSign1 } from "../cose-sign1.js";
import { parseDocumentPayload } from "../document.js";
import type { AttestationErrorCode } from "../errors.js";
import { decodeReceipt, receiptKeyFromSpki, sha256, verifyReceipt, verifyReceiptWithKeys, type ReceiptClaims } from "../receipt.js";
import { verifyAttestation, type VerificationResult } from "../verify.js";
import { ClientError, asClientError, withSteps, type ClientStep } from "./errors.js";
import { matchMeasurements, type ResolvedPolicy } from "./policy.js";
import { checkReceiptUpstream, checkServedTrustPolicy, type AttestedTrustPolicy } from "./trust-check.js";

/**
 * Verifies a saved exchange later, with nothing but files: a receipt, the
 * exact request and response body bytes it covers, and the attestation
 * document of the enclave that signed it.
 *
 * The document is verified at `at` (default: the time the receipt claims),
 * against the policy's roots, measurements and config hashes. There is no
 * nonce and no TLS connection to bind: what this proves is that a key which
 * an enclave with these measurements attested signed this answer to this
 * request, not when the document was fetched.
 *
 * With a sealed identity (channel binding v2) the document attests a set of
 * receipt keys with validity windows, so a receipt signed before a key
 * rotation also verifies against a document issued after it: the receipt
 * must be signed by one of the attested keys whose window holds the time the
 * receipt claims (ERR_RECEIPT_KEY_WINDOW otherwise).
 */
export interface SavedExchange {
  receipt: Uint8Array;
  requestBody: Uint8Array;
  responseBody: Uint8Array;
  document: Uint8Array;
  policy: ResolvedPolicy;
  /**
   * Instant to verify the document at. Default: the later of the receipt's
   * `time` and the document's own timestamp (a document issued after a
   * rotation is checked as of its issue).
   */
  at?: Date;
  /** Check the document's age against policy.maxAgeMs at `at`. Default false (age is reported, not checked). */
  checkAge?: boolean;
  /**
   * The trust policy's exact bytes (as served at /v1/attestation/policy when
   * the exchange was made). Required when policy.trust constrains anything:
   * they must hash to the document's policy_sha256 and satisfy the
   * constraints, and the receipt's upstream is checked against them.
   */
  trustPolicy?: Uint8Array;
}

export interface SavedExchangeResult {
  claims: ReceiptClaims;
  result: VerificationResult;
  measurement: string | null;
  configSha256: Uint8Array;
  /** The checked trust policy, when its bytes were given. */
  trust: AttestedTrustPolicy | null;
  at: Date;
  steps: ClientStep[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export async function verifySavedExchange(input: SavedExchange): Promise<SavedExchangeResult> {
  const steps: ClientStep[] = [];
  const fail = (err: unknown, step: string): unknown => {
    const wrapped = asClientError(err);
    return wrapped instanceof ClientError ? withSteps(wrapped, steps, step) : wrapped;
  };

  let claims: ReceiptClaims;
  try {
    claims = decodeReceipt(input.receipt).claims;
  } catch (err) {
    throw fail(err, "receipt-decode");
  }
  steps.push({
    step: "receipt-decode",
    status: "passed",
    detail: `receipt ${claims.id}: ${claims.method} ${claims.path} (${claims.surface}) ${claims.model || "(no model)"} via ${claims.provider || "(none)"}, status ${claims.status}, ${claims.stream ? "streamed" : "not streamed"}, at ${new Date(claims.time).toISOString()}`,
  });

  const at = input.at ?? new Date(Math.max(claims.time, documentTime(input.document)));
  const { policy } = input;
  let result: VerificationResult;
  try {
    result = await verifyAttestation(input.document, {
      currentDate: at,
      expectedPcrs: "any",
      maxAgeMs: input.checkAge ? policy.maxAgeMs : Infinity,
      clockSkewMs: policy.clockSkewMs,
      allowDebug: policy.allowDebug,
      trustedRoots: policy.trustedRoots,
    });
  } catch (err) {
    const code = (err as { code?: AttestationErrorCode }).code ?? "";
    throw fail(err, /CERT|CHAIN|ROOT/.test(code) ? "chain" : code === "ERR_DOC_STALE" || code === "ERR_DOC_FROM_FUTURE" ? "freshness" : "document");
  }
  for (const s of result.steps) {
    if (s.step === "pcrs" || s.step === "public-key" || s.step === "user-data" || s.step === "nonce") continue;
    if (s.step === "chain") steps.push({ ...s, detail: `${s.detail}${result.root.production ? "" : " — a DEVELOPMENT root, not the AWS root"}` });
    else if (s.step === "freshness" && !input.checkAge) {
      steps.push({
        step: "freshness",
        status: "not-requested",
        detail: `document issued ${result.timestamp.toISOString()}, ${at.getTime() - result.timestamp.getTime()} ms before ${at.toISOString()} (age not checked)`,
      });
    } else steps.push({ ...s });
  }

  let measurement: string | null = null;
  if (policy.measurements === "any") {
    steps.push({ step: "measurements", status: "not-requested", detail: `not checked against any manifest (PCR0 ${hex(result.document.pcrs.get(0) ?? new Uint8Array())})` });
  } else {
    const match = matchMeasurements(policy.measurements, result.document.pcrs);
    if (!match) throw fail(new ClientError("ERR_MEASUREMENTS_NOT_ALLOWED", `PCRs match none of the ${policy.measurements.length} allowed entries`), "measurements");
    measurement = match.label;
    steps.push({ step: "measurements", status: "passed", detail: `PCR ${[...match.pcrs.keys()].join(", ")} match manifest entry "${match.label}"` });
  }

  let binding: ChannelBinding;
  try {
    binding = decodeBinding(result.document.userData);
  } catch (err) {
    throw fail(err, "config");
  }
  const { configSha256 } = binding;
  if (policy.configSha256 === undefined) {
    steps.push({ step: "config", status: "not-requested", detail: `config_sha256 ${hex(configSha256)} (policy names no config hash)` });
  } else if (policy.configSha256.some((h) => Buffer.from(h).equals(Buffer.from(configSha256)))) {
    steps.push({ step: "config", status: "passed", detail: `config_sha256 ${hex(configSha256)} is allowed` });
  } else {
    throw fail(new ClientError("ERR_CONFIG_NOT_ALLOWED", `config_sha256 ${hex(configSha256)} is not allowed`), "config");
  }

  let trust: AttestedTrustPolicy | null = null;
  try {
    if (binding.policySha256 === undefined || input.trustPolicy === undefined) {
      if (policy.trust !== "any") {
        throw new ClientError(
          "ERR_TRUST_POLICY_MISMATCH",
          binding.policySha256 === undefined
            ? `this document attests no trust policy (channel binding v${binding.v})`
            : "the trust policy's bytes were not given, so the trust constraints cannot be checked",
        );
      }
      steps.push({
        step: "trust-policy",
        status: "not-requested",
        detail:
          binding.policySha256 === undefined
            ? `channel binding v${binding.v} attests no trust policy`
            : `policy_sha256 ${hex(binding.policySha256)} (no policy bytes given; trust "any")`,
      });
    } else {
      const checked = checkServedTrustPolicy({ bytes: input.trustPolicy, attestedSha256: binding.policySha256, dev: !result.root.production, trust: policy.trust });
      steps.push(...checked.steps);
      trust = checked.attested;
    }
    checkReceiptUpstream(claims, trust);
  } catch (err) {
    throw fail(err, "trust");
  }

  let signedBy = "the attested public_key (P-256)";
  try {
    if (binding.receiptKeys) {
      const { key } = verifyReceiptWithKeys(input.receipt, { keys: binding.receiptKeys, requestSha256: sha256(input.requestBody), responseSha256: sha256(input.responseBody) });
      const current = result.document.publicKey !== null && Buffer.from(key.spki).equals(Buffer.from(result.document.publicKey));
      signedBy = `the attested ${current ? "current" : "retired"} receipt key ${hex(sha256(key.spki)).slice(0, 16)}…, valid ${new Date(key.notBefore).toISOString()} to ${new Date(key.notAfter).toISOString()}`;
    } else {
      if (result.document.publicKey === null) throw new ClientError("ERR_PUBLIC_KEY_MISMATCH", "document carries no public_key (receipt key)");
      const key = receiptKeyFromSpki(result.document.publicKey);
      verifyReceipt(input.receipt, { publicKey: key, requestBody: input.requestBody, responseBody: input.responseBody });
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw fail(err, code === "ERR_RECEIPT_REQUEST_MISMATCH" ? "request-hash" : code === "ERR_RECEIPT_RESPONSE_MISMATCH" ? "response-hash" : "receipt-signature");
  }
  steps.push({ step: "receipt-signature", status: "passed", detail: `ES256 by ${signedBy}` });
  if (claims.bodyRead) steps.push({ step: "request-hash", status: "passed", detail: `SHA-256 of the ${input.requestBody.length} request bytes matches req_sha256` });
  else
    steps.push({
      step: "request-hash",
      status: "not-requested",
      detail: `body_read is false: the gateway answered ${claims.status} without reading the request body, so no request hash is claimed`,
    });
  steps.push({ step: "response-hash", status: "passed", detail: `SHA-256 of the ${input.responseBody.length} response bytes matches res_sha256` });
  return { claims, result, measurement, configSha256, trust, at, steps };
}

/** The document's own (not yet verified) timestamp, or 0 when it cannot be read; verification follows. */
function documentTime(document: Uint8Array): number {
  try {
    return parseDocumentPayload(decodeCoseSign1(document).payload).timestamp;
  } catch {
    return 0;
  }
}
