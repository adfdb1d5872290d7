import { createHash, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from "node:crypto";
import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { encodeCbor } from "./cbor-encode.js";
import { decodeCoseSign1Profile, sigStructure, type CoseProfile } from "./cose-sign1.js";
import type { ReceiptKeyWindow } from "./binding.js";
import { AttestationError, SIGNATURE_MESSAGE } from "./errors.js";

/**
 * Response receipts (docs/PROTOCOL.md): a COSE_Sign1 (RFC 9052 §4.2),
 * untagged, ES256 (alg -7), signed by the enclave's receipt key, whose
 * SubjectPublicKeyInfo is the attestation document's `public_key`. ES256,
 * not ES384 like the NSM: a receipt is signed for every response and checked
 * by every client, and P-256 costs about a twentieth of P-384 here.
 *
 * Payload: a definite-length CBOR map with text keys.
 */
export interface ReceiptClaims {
  /** Format version: 1. */
  v: 1;
  /** Request id, also sent as the x-request-id header. */
  id: string;
  /** Milliseconds since the epoch when the response finished. */
  time: number;
  /** Which API surface answered: "chat.completions", "messages", "embeddings", "images", "models", … */
  surface: string;
  /** The model name the client asked for ("" when none). */
  model: string;
  /** Provider instance that served it ("" when none, e.g. a rejected request). */
  provider: string;
  /** Upstream host:port dialled ("" when none; "local" for the built-in model). */
  upstreamHost: string;
  /** HTTP status sent to the client. */
  status: number;
  stream: boolean;
  /** SHA-256 of the exact request body bytes received (empty body → SHA-256 of ""). */
  requestSha256: Uint8Array;
  /** SHA-256 of the exact response body bytes sent; for streams, every byte before the receipt event. */
  responseSha256: Uint8Array;
}

export const COSE_ALG_ES256 = -7;
export const RECEIPT_PROFILE: CoseProfile = { alg: COSE_ALG_ES256, algName: "ES256", signatureLength: 64, maxBytes: 4096 };
const PROTECTED_ES256 = Uint8Array.of(0xa1, 0x01, 0x26); // {1: -7}

/** The receipt is carried in this header on non-streamed responses (base64url). */
export const RECEIPT_HEADER = "x-egw-receipt";
/**
 * …and on streamed ones as a final SSE *comment* block after the stream's
 * own end: `: egw-receipt <base64url>\n\n`. Every spec-compliant SSE parser
 * discards comment lines (WHATWG HTML §9.2.6), so stock clients never see
 * it. A named event would not do: @anthropic-ai/sdk JSON-parses the data of
 * every event it does not know and would fail on the receipt.
 */
export const RECEIPT_SSE_PREFIX = ": egw-receipt ";

/** The SSE block that carries a receipt at the end of a stream. */
export function receiptSseBlock(receipt: Uint8Array): string {
  return `${RECEIPT_SSE_PREFIX}${Buffer.from(receipt).toString("base64url")}\n\n`;
}

/**
 * Splits a complete streamed body into the bytes the receipt covers and the
 * receipt itself. The receipt block must be the last thing in the body.
 */
export function splitStreamReceipt(body: Uint8Array): { signed: Uint8Array; receipt: Uint8Array } | null {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const at = buf.lastIndexOf(RECEIPT_SSE_PREFIX);
  if (at < 0 || (at > 0 && buf[at - 1] !== 0x0a)) return null;
  const tail = buf.subarray(at + RECEIPT_SSE_PREFIX.length).toString("latin1");
  const match = /^([A-Za-z0-9_-]{1,8192})\n\n$/.exec(tail);
  if (!match) return null;
  return { signed: body.subarray(0, at), receipt: new Uint8Array(Buffer.from(match[1]!, "base64url")) };
}

const KEYS = ["v", "id", "time", "surface", "model", "provider", "upstream_host", "status", "stream", "req_sha256", "res_sha256"] as const;

function bad(message: string): AttestationError {
  return new AttestationError("ERR_DOC_FIELD", `receipt: ${message}`);
}

export function encodeReceiptPayload(c: ReceiptClaims): Uint8Array {
  if (c.requestSha256.length !== 32 || c.responseSha256.length !== 32) throw bad("hashes must be 32 bytes");
  return encodeCbor(
    new Map<string, unknown>([
      ["v", 1],
      ["id", c.id],
      ["time", BigInt(c.time)],
      ["surface", c.surface],
      ["model", c.model],
      ["provider", c.provider],
      ["upstream_host", c.upstreamHost],
      ["status", c.status],
      ["stream", c.stream],
      ["req_sha256", Buffer.from(c.requestSha256)],
      ["res_sha256", Buffer.from(c.responseSha256)],
    ]),
  );
}

/** Signs claims with the receipt key (a P-256 private KeyObject). Synchronous: ~0.05 ms. */
export function signReceipt(claims: ReceiptClaims, privateKey: KeyObject): Uint8Array {
  const payload = encodeReceiptPayload(claims);
  const signature = sign("sha256", sigStructure(PROTECTED_ES256, payload), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return encodeCbor([Buffer.from(PROTECTED_ES256), new Map(), Buffer.from(payload), signature]);
}

function text(map: Map<unknown, unknown>, key: string, max = 256): string {
  const v = map.get(key);
  if (typeof v !== "string" || Buffer.byteLength(v) > max) throw bad(`${key} must be text of at most ${max} bytes`);
  return v;
}

function hash(map: Map<unknown, unknown>, key: string): Uint8Array {
  const v = map.get(key);
  if (!isBytes(v) || v.length !== 32) throw bad(`${key} must be 32 bytes`);
  return copyBytes(v);
}

export function decodeReceipt(bytes: Uint8Array): { claims: ReceiptClaims; protectedBytes: Uint8Array; payload: Uint8Array; signature: Uint8Array } {
  const cose = decodeCoseSign1Profile(bytes, RECEIPT_PROFILE);
  const map = decodeStrict(cose.payload, "receipt payload");
  if (!(map instanceof Map)) throw bad("payload must be a map");
  for (const key of map.keys()) {
    if (typeof key !== "string" || !(KEYS as readonly string[]).includes(key)) throw new AttestationError("ERR_DOC_UNKNOWN_FIELD", "receipt: unknown field");
  }
  if (map.get("v") !== 1) throw bad("v must be 1");
  const time = map.get("time");
  const status = map.get("status");
  const stream = map.get("stream");
  if (typeof time !== "number" || !Number.isSafeInteger(time) || time <= 0) throw bad("time must be a positive integer");
  if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 599) throw bad("status must be an HTTP status");
  if (typeof stream !== "boolean") throw bad("stream must be a boolean");
  return {
    claims: {
      v: 1,
      id: text(map, "id"),
      time,
      surface: text(map, "surface"),
      model: text(map, "model"),
      provider: text(map, "provider"),
      upstreamHost: text(map, "upstream_host"),
      status,
      stream,
      requestSha256: hash(map, "req_sha256"),
      responseSha256: hash(map, "res_sha256"),
    },
    protectedBytes: cose.protectedBytes,
    payload: cose.payload,
    signature: cose.signature,
  };
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The receipt public key from an attestation document's `public_key` (SPKI DER of a P-256 key). */
export function receiptKeyFromSpki(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (cause) {
    throw new AttestationError("ERR_DOC_FIELD", "public_key is not a SubjectPublicKeyInfo", { cause });
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new AttestationError("ERR_DOC_FIELD", "public_key is not an EC P-256 key");
  }
  return key;
}

export type ReceiptErrorCode = "ERR_RECEIPT_REQUEST_MISMATCH" | "ERR_RECEIPT_RESPONSE_MISMATCH" | "ERR_RECEIPT_KEY_WINDOW";

/**
 * Verifies a receipt's signature with the attested key, then that it covers
 * exactly these request and response bytes. Both hashes are checked over
 * the bytes as sent and received; nothing is re-encoded.
 */
export function verifyReceipt(
  receipt: Uint8Array,
  options: { publicKey: KeyObject; requestBody: Uint8Array; responseBody: Uint8Array },
): ReceiptClaims {
  if (!options || !options.publicKey || !options.requestBody || !options.responseBody) {
    throw new AttestationError("ERR_POLICY_INVALID", "verifyReceipt needs publicKey, requestBody and responseBody");
  }
  return verifyReceiptDigests(receipt, {
    publicKey: options.publicKey,
    requestSha256: sha256(options.requestBody),
    responseSha256: sha256(options.responseBody),
  });
}

/**
 * verifyReceipt over digests instead of whole bodies, so a stream can be
 * hashed as it passes through and never kept. The signature is checked over
 * the payload bytes as received, then the request hash, then the response hash.
 */
type DecodedReceipt = ReturnType<typeof decodeReceipt>;

function signedBy(decoded: DecodedReceipt, publicKey: KeyObject): boolean {
  return verify("sha256", sigStructure(decoded.protectedBytes, decoded.payload), { key: publicKey, dsaEncoding: "ieee-p1363" }, decoded.signature);
}

/** Both hashes, after the signature verified. */
function checkDigests(decoded: DecodedReceipt, options: { requestSha256: Uint8Array; responseSha256: Uint8Array }): ReceiptClaims {
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
  if (!same(decoded.claims.requestSha256, options.requestSha256)) {
    throw new AttestationError("ERR_RECEIPT_REQUEST_MISMATCH", "receipt does not cover the request body that was sent");
  }
  if (!same(decoded.claims.responseSha256, options.responseSha256)) {
    throw new AttestationError("ERR_RECEIPT_RESPONSE_MISMATCH", "receipt does not cover the response body that was received");
  }
  return decoded.claims;
}

export function verifyReceiptDigests(
  receipt: Uint8Array,
  options: { publicKey: KeyObject; requestSha256: Uint8Array; responseSha256: Uint8Array },
): ReceiptClaims {
  const decoded = decodeReceipt(receipt);
  if (!signedBy(decoded, options.publicKey)) throw new AttestationError("ERR_SIGNATURE_INVALID", SIGNATURE_MESSAGE);
  return checkDigests(decoded, options);
}

/**
 * verifyReceiptDigests against an attested receipt-key set (channel binding
 * v2, a sealed identity with rotation). Only keys whose window holds the
 * time the receipt claims are candidates: a retired key stays usable for
 * the receipts it signed while it was current, never for later ones. The
 * receipt is decoded once; each candidate costs one signature check, at most
 * MAX_RECEIPT_KEYS. Fails with ERR_RECEIPT_KEY_WINDOW when an attested key
 * signed it for a time outside that key's window, else with the usual
 * signature or hash error.
 */
export function verifyReceiptWithKeys(
  receipt: Uint8Array,
  options: { keys: readonly ReceiptKeyWindow[]; requestSha256: Uint8Array; responseSha256: Uint8Array },
): { claims: ReceiptClaims; key: ReceiptKeyWindow } {
  if (!options || !Array.isArray(options.keys) || options.keys.length === 0 || !options.requestSha256 || !options.responseSha256) {
    throw new AttestationError("ERR_POLICY_INVALID", "verifyReceiptWithKeys needs keys, requestSha256 and responseSha256");
  }
  const decoded = decodeReceipt(receipt);
  const { time } = decoded.claims;
  const inWindow = (k: ReceiptKeyWindow) => k.notBefore <= time && time < k.notAfter;
  // A hash mismatch under a key whose signature verified is final.
  const current = options.keys.find((k) => inWindow(k) && signedBy(decoded, receiptKeyFromSpki(k.spki)));
  if (current) return { claims: checkDigests(decoded, options), key: current };
  // Say why when an attested key did sign it, but for a time outside its
  // window (a retired key used after its cut-off): that is not a forgery by
  // a stranger, it is a key that must no longer be trusted for that time.
  const outside = options.keys.find((k) => !inWindow(k) && signedBy(decoded, receiptKeyFromSpki(k.spki)));
  if (outside) {
    throw new AttestationError(
      "ERR_RECEIPT_KEY_WINDOW",
      `receipt time ${new Date(time).toISOString()} is outside its key's attested validity (${new Date(outside.notBefore).toISOString()} to ${new Date(outside.notAfter).toISOString()})`,
    );
  }
  throw new AttestationError("ERR_SIGNATURE_INVALID", SIGNATURE_MESSAGE);
}
