import { createHash, timingSafeEqual, type KeyObject } from "node:crypto";
import { decodeBinding, findReceiptKey } from "../binding.js";
import type { ChainCache } from "../chain.js";
import type { AttestationErrorCode } from "../errors.js";
import { receiptKeyFromSpki, sha256 } from "../receipt.js";
import { verifyAttestation, type VerificationResult } from "../verify.js";
import { ClientError, asClientError, type ClientStep } from "./errors.js";
import { formatExpires } from "../manifest/rollback.js";
import { matchMeasurements, type ResolvedPolicy } from "./policy.js";
import { decodeReceiptText, verifyReceiptDigests } from "./receipt-check.js";
import type { AttestedTrustPolicy } from "./trust-check.js";

/**
 * A gateway that proved, on one TLS connection, that it is an attested
 * enclave running approved code. Everything a relying party needs to
 * verify receipts from it, now or later, and to audit why it was trusted.
 */
export interface AttestedPeer {
  /** https://host:port */
  origin: string;
  /** The attestation document, raw COSE_Sign1 bytes exactly as received. */
  document: Uint8Array;
  result: VerificationResult;
  /** The nonce this client generated for this connection. */
  nonce: Uint8Array;
  /** SHA-256 of the TLS certificate's SubjectPublicKeyInfo seen on the connection (= the attested one). */
  tlsSpkiSha256: Uint8Array;
  /** The attested deployment hash (trust policy + operations [+ sealed file]), from the channel binding. */
  configSha256: Uint8Array;
  /** The attested trust policy's SHA-256 (binding v3); null for an older enclave's v1/v2 document, which attests none. */
  policySha256: Uint8Array | null;
  /**
   * The trust policy read over this connection and checked against the
   * policy's trust section (connection.ts, trust-check.ts). Null until
   * then, and for a v1/v2 document (accepted only under trust "any").
   */
  trust: AttestedTrustPolicy | null;
  /** Label of the manifest entry the PCRs matched; null when the policy accepted any measurements. */
  measurement: string | null;
  /** The attested receipt-signing key (document public_key). */
  receiptKey: KeyObject;
  /** Client clock when verification finished. */
  verifiedAt: Date;
  steps: ClientStep[];
}

export interface PeerCheckInput {
  origin: string;
  document: Uint8Array;
  nonce: Uint8Array;
  /** SHA-256 of the SPKI of the certificate on the connection the document came over. */
  peerSpkiSha256: Uint8Array;
  /** The x-egw-receipt header of the attestation response, if any. */
  receiptHeader: string | undefined;
  policy: ResolvedPolicy;
  currentDate: Date;
  cache?: ChainCache;
  /** Steps already done (e.g. the TLS handshake), reported first. */
  steps?: ClientStep[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Which report line a verifyAttestation failure belongs to. */
function stepOf(code: string): string {
  const map: Partial<Record<AttestationErrorCode, string>> = {
    ERR_INPUT_TOO_LARGE: "decode",
    ERR_CBOR_MALFORMED: "decode",
    ERR_CBOR_TRAILING_BYTES: "decode",
    ERR_CBOR_DUPLICATE_KEY: "decode",
    ERR_COSE_STRUCTURE: "cose-header",
    ERR_COSE_ALG: "cose-header",
    ERR_DOC_FIELD: "fields",
    ERR_DOC_UNKNOWN_FIELD: "fields",
    ERR_PCR_INVALID: "fields",
    ERR_CERT_MALFORMED: "chain",
    ERR_CERT_ALGORITHM: "chain",
    ERR_CERT_NOT_YET_VALID: "chain",
    ERR_CERT_EXPIRED: "chain",
    ERR_CERT_CONSTRAINTS: "chain",
    ERR_CHAIN_BROKEN: "chain",
    ERR_ROOT_UNTRUSTED: "chain",
    ERR_SIGNATURE_INVALID: "signature",
    ERR_DEBUG_MODE: "debug-mode",
    ERR_NONCE_MISMATCH: "nonce",
    ERR_DOC_STALE: "freshness",
    ERR_DOC_FROM_FUTURE: "freshness",
    ERR_POLICY_INVALID: "policy",
  };
  return map[code as AttestationErrorCode] ?? "document";
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The relying party's checks on an attestation document fetched over a
 * connection, in order: the policy's own expiry at `currentDate` (a
 * manifest that has expired since it was loaded attests nothing), the
 * document itself (verifyAttestation: chain to a trusted root at
 * `currentDate`, signature, debug mode, our nonce, age),
 * the measurements against the policy's allowed sets, the channel binding
 * (the TLS key on this connection is the attested one), the config hash,
 * that a trust policy is attested when the policy constrains trust (binding
 * v3; the policy itself is read and checked by connection.ts), and the receipt key (a P-256 SPKI under which the attestation response's
 * own receipt verifies). Throws a ClientError whose `steps` end with the
 * failed one; returns only when every check passed.
 */
export async function checkPeer(input: PeerCheckInput): Promise<AttestedPeer> {
  const { policy } = input;
  const steps: ClientStep[] = [...(input.steps ?? [])];
  const fail = (code: ConstructorParameters<typeof ClientError>[0], step: string, message: string, cause?: unknown): ClientError => {
    steps.push({ step, status: "failed", detail: `${code}: ${message}` });
    return new ClientError(code, message, { steps: [...steps], ...(cause !== undefined && { cause }) });
  };

  if (policy.expires !== undefined) {
    const left = policy.expires.getTime() - input.currentDate.getTime();
    if (left <= 0) {
      throw fail(
        "ERR_MANIFEST_EXPIRED",
        "expiry",
        `the policy's manifest expired at ${formatExpires(policy.expires)} (client clock ${input.currentDate.toISOString()}); fetch the current manifest`,
      );
    }
    steps.push({ step: "expiry", status: "passed", detail: `the manifest is valid until ${formatExpires(policy.expires)} (${Math.floor(left / 1000)} s left)` });
  }

  let result: VerificationResult;
  try {
    result = await verifyAttestation(input.document, {
      currentDate: input.currentDate,
      // Measurements are matched below against the policy's sets, each with its label.
      expectedPcrs: "any",
      nonce: input.nonce,
      maxAgeMs: policy.maxAgeMs,
      clockSkewMs: policy.clockSkewMs,
      allowDebug: policy.allowDebug,
      trustedRoots: policy.trustedRoots,
      ...(input.cache && { cache: input.cache }),
    });
  } catch (err) {
    const wrapped = asClientError(err);
    if (!(wrapped instanceof ClientError)) throw err;
    throw fail(wrapped.code, stepOf(wrapped.code), wrapped.message, err);
  }
  const { document } = result;
  for (const s of result.steps) {
    if (s.step === "pcrs" || s.step === "public-key" || s.step === "user-data") continue;
    if (s.step === "nonce") steps.push({ step: "nonce", status: "passed", detail: `echoes the ${input.nonce.length}-byte random nonce generated for this connection` });
    else if (s.step === "chain") steps.push({ step: "chain", status: "passed", detail: `${s.detail}${result.root.production ? "" : " — a DEVELOPMENT root, not the AWS root"}` });
    else steps.push({ ...s });
  }

  let measurement: string | null = null;
  if (policy.measurements === "any") {
    steps.push({ step: "measurements", status: "not-requested", detail: `not checked against any manifest (PCR0 ${hex(document.pcrs.get(0) ?? new Uint8Array())})` });
  } else {
    const match = matchMeasurements(policy.measurements, document.pcrs);
    if (!match) {
      const shown = [0, 1, 2].filter((i) => document.pcrs.has(i)).map((i) => `PCR${i}=${hex(document.pcrs.get(i)!).slice(0, 16)}…`);
      throw fail("ERR_MEASUREMENTS_NOT_ALLOWED", "measurements", `PCRs match none of the ${policy.measurements.length} allowed entries (${shown.join(", ")})`);
    }
    measurement = match.label;
    steps.push({ step: "measurements", status: "passed", detail: `PCR ${[...match.pcrs.keys()].join(", ")} match manifest entry "${match.label}"` });
  }

  let binding;
  try {
    binding = decodeBinding(document.userData);
  } catch (err) {
    const wrapped = asClientError(err);
    if (!(wrapped instanceof ClientError)) throw err;
    throw fail(wrapped.code, "tls-binding", wrapped.message, err);
  }
  if (!same(binding.tlsSpkiSha256, input.peerSpkiSha256)) {
    throw fail(
      "ERR_TLS_BINDING",
      "tls-binding",
      `the TLS certificate on this connection (SPKI sha256 ${hex(input.peerSpkiSha256)}) is not the attested one (${hex(binding.tlsSpkiSha256)})`,
    );
  }
  steps.push({ step: "tls-binding", status: "passed", detail: `TLS certificate SPKI sha256 ${hex(input.peerSpkiSha256)} equals user_data.tls_spki_sha256` });

  if (policy.configSha256 === undefined) {
    steps.push({ step: "config", status: "not-requested", detail: `config_sha256 ${hex(binding.configSha256)} (policy names no config hash)` });
  } else if (policy.configSha256.some((h) => same(h, binding.configSha256))) {
    steps.push({ step: "config", status: "passed", detail: `config_sha256 ${hex(binding.configSha256)} is allowed` });
  } else {
    throw fail("ERR_CONFIG_NOT_ALLOWED", "config", `config_sha256 ${hex(binding.configSha256)} is not among the ${policy.configSha256.length} allowed`);
  }

  if (binding.policySha256 === undefined) {
    // An older enclave: nothing it attests says where prompts or keys go.
    if (policy.trust !== "any") {
      throw fail(
        "ERR_TRUST_POLICY_MISMATCH",
        "trust-policy",
        `this enclave attests no trust policy (channel binding v${binding.v}), so the policy's trust constraints cannot be checked`,
      );
    }
    steps.push({ step: "trust-policy", status: "not-requested", detail: `channel binding v${binding.v} attests no trust policy (trust "any")` });
  }

  let receiptKey: KeyObject;
  try {
    if (document.publicKey === null) throw new ClientError("ERR_PUBLIC_KEY_MISMATCH", "document carries no public_key (receipt key)");
    receiptKey = receiptKeyFromSpki(document.publicKey);
    if (binding.receiptKeys) {
      // A sealed identity: the signing key must be one the binding attests,
      // inside its window at the time the document was issued.
      const entry = findReceiptKey(binding.receiptKeys, document.publicKey);
      if (!entry) throw new ClientError("ERR_PUBLIC_KEY_MISMATCH", "public_key is not among the attested receipt_keys");
      const issued = result.timestamp.getTime();
      if (issued < entry.notBefore || issued >= entry.notAfter) {
        throw new ClientError(
          "ERR_RECEIPT_KEY_WINDOW",
          `the receipt key is valid ${new Date(entry.notBefore).toISOString()} to ${new Date(entry.notAfter).toISOString()}, not at the document's time`,
        );
      }
    }
    // The attestation response carries a receipt too (empty request body):
    // checking it proves the attested key is the one that signs answers.
    if (input.receiptHeader === undefined) throw new ClientError("ERR_RECEIPT_MISSING", "the attestation response carries no receipt");
    const receipt = decodeReceiptText(input.receiptHeader);
    verifyReceiptDigests(receipt, { publicKey: receiptKey, requestSha256: sha256(new Uint8Array()), responseSha256: sha256(input.document) });
  } catch (err) {
    const wrapped = asClientError(err);
    if (!(wrapped instanceof ClientError)) throw err;
    throw fail(wrapped.code, "receipt-key", wrapped.message, err);
  }
  steps.push({
    step: "receipt-key",
    status: "passed",
    detail: `public_key is an EC P-256 key (sha256 ${hex(sha256(document.publicKey))}); the attestation response's receipt verifies under it`,
  });

  return {
    origin: input.origin,
    document: input.document,
    result,
    nonce: input.nonce,
    tlsSpkiSha256: input.peerSpkiSha256,
    configSha256: binding.configSha256,
    policySha256: binding.policySha256 ?? null,
    trust: null,
    measurement,
    receiptKey,
    verifiedAt: input.currentDate,
    steps,
  };
}

export function spkiSha256(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(spkiDer).digest());
}
