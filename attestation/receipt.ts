import { createHash, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from "node:crypto";
import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { encodeCbor } from "./cbor-encode.js";
import { decodeCoseSign1Profile, sigStructure, type CoseProfile } from "./cose-sign1.js";
import type { ReceiptKeyWindow } from "./binding.js";
import { AttestationError, SIGNATURE_MESSAGE } from "./errors.js";

/**
 * Response receipts (docs/PROTOCOL.md §3): a COSE_Sign1 (RFC 9052 §4.2),
 * untagged, ES256 (alg -7), signed by the enclave's receipt key, whose
 * SubjectPublicKeyInfo is the attestation document's `public_key`. ES256,
 * not ES384 like the NSM: a receipt is signed for every response and checked
 * by every client, and P-256 costs about a twentieth of P-384 here.
 *
 * Payload: a definite-length CBOR map with text keys, format version 2.
 * Version 1 (no method/path, `upstream_host`, a request hash even for a body
 * that was never read) is refused: a decoder that accepted both would let a
 * v1 receipt stand in where v2 binds more.
 */
export interface ReceiptClaims {
  /** Format version: 2. */
  v: 2;
  /** Request id, also sent as the x-request-id header. */
  id: string;
  /** Milliseconds since the epoch when the response finished. */
  time: number;
  /** The request method as received ("POST", "GET", …). */
  method: string;
  /** The request path as received, without the query (receiptPath: at most MAX_RECEIPT_PATH bytes). */
  path: string;
  /** Which API surface answered: "chat.completions", "messages", "embeddings", "images", "models", … */
  surface: string;
  /** The model name the client asked for ("" when none). */
  model: string;
  /** Provider instance that served it ("" when none, e.g. a rejected request). */
  provider: string;
  /** HTTP status sent to the client. */
  status: number;
  stream: boolean;
  /**
   * Whether the gateway read the request body. A request refused before
   * (unknown path, 401, 413, 429 …) carries false and no request hash: it
   * never claims the hash of bytes it did not read.
   */
  bodyRead: boolean;
  /** SHA-256 of the exact request body bytes received: present exactly when bodyRead. */
  requestSha256?: Uint8Array;
  /** SHA-256 of the exact response body bytes sent; for streams, every byte before the receipt event. */
  responseSha256: Uint8Array;
  /** The upstream that answered, as the enclave saw it; absent when none did (a refusal, a gateway error). */
  upstream?: UpstreamProvenance;
}

/** Where an answer came from, as the enclave saw it (receipt key `upstream`). */
export interface UpstreamProvenance {
  /** "https://api.openai.com" (scheme://host[:port], the default port omitted), or "local" for the built-in model. */
  origin: string;
  /** SHA-256 of the SubjectPublicKeyInfo DER of the upstream TLS leaf certificate the enclave verified; absent for local / plain-http. */
  tlsSpkiSha256?: Uint8Array;
  /** The provider's request id (OpenAI x-request-id, Anthropic request-id); absent when it sent none. */
  requestId?: string;
  /** The model the provider reported in its answer (for streams, its first chunk); absent when none. */
  model?: string;
}

/** Bounds on the text claims; with them a receipt stays well under RECEIPT_PROFILE.maxBytes. */
export const MAX_RECEIPT_PATH = 1024;
export const MAX_UPSTREAM_REQUEST_ID = 128;
export const MAX_UPSTREAM_MODEL = 256;
const MAX_TEXT = 256;
const MAX_METHOD = 16;

/**
 * The `path` claim for a request path (WHATWG URL pathname, no query): the
 * path itself, or its first MAX_RECEIPT_PATH bytes when longer. Pathnames
 * are ASCII (the URL parser percent-encodes the rest), so bytes are chars.
 * Both the gateway and the client call this, so a long path compares equal
 * on both sides; no route is that long, so such a request is a 404.
 */
export function receiptPath(pathname: string): string {
  return pathname.length <= MAX_RECEIPT_PATH ? pathname : pathname.slice(0, MAX_RECEIPT_PATH);
}

/** An upstream text claim cut to its bound (provider-supplied: never trusted to be short) and stripped of control characters. */
export function boundedUpstreamText(value: unknown, max: number): string | undefined {
  if (typeof value !== "string") return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, "");
  if (clean === "") return undefined;
  let out = clean.slice(0, max);
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
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

const KEYS = ["v", "id", "time", "method", "path", "surface", "model", "provider", "status", "stream", "body_read", "req_sha256", "res_sha256", "upstream"] as const;
const UPSTREAM_KEYS = ["origin", "tls_spki_sha256", "request_id", "model"] as const;

function bad(message: string): AttestationError {
  return new AttestationError("ERR_DOC_FIELD", `receipt: ${message}`);
}

export function encodeReceiptPayload(c: ReceiptClaims): Uint8Array {
  if (c.v !== 2) throw bad("v must be 2");
  if (c.responseSha256.length !== 32) throw bad("res_sha256 must be 32 bytes");
  if (c.bodyRead !== (c.requestSha256 !== undefined)) throw bad("req_sha256 is present exactly when body_read is true");
  if (c.requestSha256 !== undefined && c.requestSha256.length !== 32) throw bad("req_sha256 must be 32 bytes");
  if (Buffer.byteLength(c.path) > MAX_RECEIPT_PATH) throw bad(`path must be at most ${MAX_RECEIPT_PATH} bytes (receiptPath)`);
  const entries: [string, unknown][] = [
    ["v", 2],
    ["id", c.id],
    ["time", BigInt(c.time)],
    ["method", c.method],
    ["path", c.path],
    ["surface", c.surface],
    ["model", c.model],
    ["provider", c.provider],
    ["status", c.status],
    ["stream", c.stream],
    ["body_read", c.bodyRead],
  ];
  if (c.requestSha256 !== undefined) entries.push(["req_sha256", Buffer.from(c.requestSha256)]);
  entries.push(["res_sha256", Buffer.from(c.responseSha256)]);
  if (c.upstream !== undefined) entries.push(["upstream", encodeUpstream(c.upstream)]);
  return encodeCbor(new Map<string, unknown>(entries));
}

function encodeUpstream(u: UpstreamProvenance): Map<string, unknown> {
  if (u.tlsSpkiSha256 !== undefined && u.tlsSpkiSha256.length !== 32) throw bad("upstream.tls_spki_sha256 must be 32 bytes");
  if (u.requestId !== undefined && Buffer.byteLength(u.requestId) > MAX_UPSTREAM_REQUEST_ID) throw bad("upstream.request_id too long");
  if (u.model !== undefined && Buffer.byteLength(u.model) > MAX_UPSTREAM_MODEL) throw bad("upstream.model too long");
  const m = new Map<string, unknown>([["origin", u.origin]]);
  if (u.tlsSpkiSha256 !== undefined) m.set("tls_spki_sha256", Buffer.from(u.tlsSpkiSha256));
  if (u.requestId !== undefined) m.set("request_id", u.requestId);
  if (u.model !== undefined) m.set("model", u.model);
  return m;
}

/** Signs claims with the receipt key (a P-256 private KeyObject). Synchronous: ~0.05 ms. */
export function signReceipt(claims: ReceiptClaims, privateKey: KeyObject): Uint8Array {
  const payload = encodeReceiptPayload(claims);
  const signature = sign("sha256", sigStructure(PROTECTED_ES256, payload), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return encodeCbor([Buffer.from(PROTECTED_ES256), new Map(), Buffer.from(payload), signature]);
}

function text(map: Map<unknown, unknown>, key: string, max = MAX_TEXT, where = ""): string {
  const v = map.get(key);
  if (typeof v !== "string" || Buffer.byteLength(v) > max) throw bad(`${where}${key} must be text of at most ${max} bytes`);
  return v;
}

function hash(map: Map<unknown, unknown>, key: string, where = ""): Uint8Array {
  const v = map.get(key);
  if (!isBytes(v) || v.length !== 32) throw bad(`${where}${key} must be 32 bytes`);
  return copyBytes(v);
}

function onlyKeys(map: Map<unknown, unknown>, keys: readonly string[], where: string): void {
  for (const key of map.keys()) {
    if (typeof key !== "string" || !keys.includes(key)) throw new AttestationError("ERR_DOC_UNKNOWN_FIELD", `receipt: unknown field${where ? ` in ${where}` : ""}`);
  }
}

function decodeUpstream(value: unknown): UpstreamProvenance {
  if (!(value instanceof Map)) throw bad("upstream must be a map");
  onlyKeys(value, UPSTREAM_KEYS, "upstream");
  const origin = text(value, "origin", MAX_TEXT, "upstream.");
  if (origin === "") throw bad("upstream.origin must not be empty");
  const u: UpstreamProvenance = { origin };
  if (value.has("tls_spki_sha256")) u.tlsSpkiSha256 = hash(value, "tls_spki_sha256", "upstream.");
  if (value.has("request_id")) u.requestId = text(value, "request_id", MAX_UPSTREAM_REQUEST_ID, "upstream.");
  if (value.has("model")) u.model = text(value, "model", MAX_UPSTREAM_MODEL, "upstream.");
  return u;
}

export function decodeReceipt(bytes: Uint8Array): { claims: ReceiptClaims; protectedBytes: Uint8Array; payload: Uint8Array; signature: Uint8Array } {
  const cose = decodeCoseSign1Profile(bytes, RECEIPT_PROFILE);
  const map = decodeStrict(cose.payload, "receipt payload");
  if (!(map instanceof Map)) throw bad("payload must be a map");
  // The version first: a v1 receipt is named as such, not as a pile of unknown fields.
  if (map.get("v") !== 2) throw bad(`v must be 2 (this client reads receipt format v2 only; got ${typeof map.get("v") === "number" ? map.get("v") : "none"})`);
  onlyKeys(map, KEYS, "");
  const time = map.get("time");
  const status = map.get("status");
  const stream = map.get("stream");
  const bodyRead = map.get("body_read");
  if (typeof time !== "number" || !Number.isSafeInteger(time) || time <= 0) throw bad("time must be a positive integer");
  if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 599) throw bad("status must be an HTTP status");
  if (typeof stream !== "boolean") throw bad("stream must be a boolean");
  if (typeof bodyRead !== "boolean") throw bad("body_read must be a boolean");
  // Never both "not read" and a hash, never "read" without one.
  if (bodyRead !== map.has("req_sha256")) throw bad("req_sha256 must be present exactly when body_read is true");
  const method = text(map, "method", MAX_METHOD);
  if (!/^[A-Z]{1,16}$/.test(method)) throw bad("method must be an upper-case HTTP method");
  const path = text(map, "path", MAX_RECEIPT_PATH);
  if (!path.startsWith("/")) throw bad("path must start with /");
  const claims: ReceiptClaims = {
    v: 2,
    id: text(map, "id"),
    time,
    method,
    path,
    surface: text(map, "surface"),
    model: text(map, "model"),
    provider: text(map, "provider"),
    status,
    stream,
    bodyRead,
    ...(bodyRead && { requestSha256: hash(map, "req_sha256") }),
    responseSha256: hash(map, "res_sha256"),
    ...(map.has("upstream") && { upstream: decodeUpstream(map.get("upstream")) }),
  };
  return { claims, protectedBytes: cose.protectedBytes, payload: cose.payload, signature: cose.signature };
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
export function verifyReceipt(receipt: Uint8Array, options: { publicKey: KeyObject; requestBody: Uint8Array; responseBody: Uint8Array }): ReceiptClaims {
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

const EMPTY_SHA256 = new Uint8Array(createHash("sha256").digest());

/**
 * Both hashes, after the signature verified. A receipt with body_read false
 * has no request hash to compare: it says the gateway answered without
 * reading the body, which is what a refusal (404, 401, 413, 429 …) does, or
 * any answer to a request that had no body. A success that claims not to
 * have read a non-empty body describes some other exchange: refused.
 */
function checkDigests(decoded: DecodedReceipt, options: { requestSha256: Uint8Array; responseSha256: Uint8Array }): ReceiptClaims {
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
  const { claims } = decoded;
  if (claims.requestSha256 !== undefined) {
    if (!same(claims.requestSha256, options.requestSha256)) {
      throw new AttestationError("ERR_RECEIPT_REQUEST_MISMATCH", "receipt does not cover the request body that was sent");
    }
  } else if (claims.status < 400 && !same(options.requestSha256, EMPTY_SHA256)) {
    throw new AttestationError("ERR_RECEIPT_REQUEST_MISMATCH", `receipt says the request body was not read, yet claims success (status ${claims.status})`);
  }
  if (!same(claims.responseSha256, options.responseSha256)) {
    throw new AttestationError("ERR_RECEIPT_RESPONSE_MISMATCH", "receipt does not cover the response body that was received");
  }
  return claims;
}

export function verifyReceiptDigests(receipt: Uint8Array, options: { publicKey: KeyObject; requestSha256: Uint8Array; responseSha256: Uint8Array }): ReceiptClaims {
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
