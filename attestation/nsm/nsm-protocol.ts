import { Encoder } from "cbor-x";
import { NSM_MAX_NONCE, NSM_MAX_PUBLIC_KEY, NSM_MAX_USER_DATA, type AttestationRequest } from "../attester.js";
import { decodeStrict } from "../cbor-decode.js";
import { AttestationError, isAttestationError } from "../errors.js";

/**
 * The NSM request/response codec (aws-nitro-enclaves-nsm-api, src/api/mod.rs).
 *
 * `Request` and `Response` are Rust enums serialized by serde with the default
 * external tagging (src/driver/mod.rs: `serde_cbor::to_vec(&request)`):
 *  - a struct variant is a one-key map: { "DescribePCR": { "index": 3 } };
 *  - a unit variant is its name as a text string: "GetRandom";
 *  - the newtype variant `Error(ErrorCode)` is { "Error": "InvalidIndex" }.
 * Struct fields are text keys in declaration order, `Option::None` is null,
 * and `ByteBuf` / `#[serde(with = "serde_bytes")]` fields are byte strings.
 *
 * Only the three requests an attester needs are implemented; ExtendPCR,
 * LockPCR(s) and DescribeNSM are deliberately absent (an attester must not
 * change PCRs).
 */

/** Largest request the driver accepts (src/driver/mod.rs NSM_REQUEST_MAX_SIZE; the kernel answers EMSGSIZE above it). */
export const NSM_REQUEST_MAX_SIZE = 0x1000;
/** Size of the response buffer handed to the driver (src/driver/mod.rs NSM_RESPONSE_MAX_SIZE). */
export const NSM_RESPONSE_MAX_SIZE = 0x3000;

/** `ErrorCode` variants, in declaration order (src/api/mod.rs). */
export const NSM_ERROR_CODES = [
  "Success",
  "InvalidArgument",
  "InvalidIndex",
  "InvalidResponse",
  "ReadOnlyIndex",
  "InvalidOperation",
  "BufferTooSmall",
  "InputTooLarge",
  "InternalError",
] as const;
export type NsmErrorCode = (typeof NSM_ERROR_CODES)[number];

/** `Response` variants (src/api/mod.rs); used only to name what the NSM answered. */
const RESPONSE_VARIANTS: ReadonlySet<string> = new Set(["DescribePCR", "ExtendPCR", "LockPCR", "LockPCRs", "DescribeNSM", "Attestation", "GetRandom", "Error"]);

/** The `cause` of the AttestationError raised for an NSM `Error(code)` response. */
export interface NsmErrorCause {
  readonly nsmErrorCode: NsmErrorCode;
}

/** The NSM error code behind an AttestationError, if the NSM itself answered `Error(code)`. */
export function nsmErrorCodeOf(err: unknown): NsmErrorCode | undefined {
  if (!isAttestationError(err) || err.code !== "ERR_NSM_RESPONSE") return undefined;
  const cause: unknown = err.cause;
  if (typeof cause !== "object" || cause === null || !("nsmErrorCode" in cause)) return undefined;
  const code: unknown = cause.nsmErrorCode;
  return (NSM_ERROR_CODES as readonly unknown[]).includes(code) ? (code as NsmErrorCode) : undefined;
}

// ─── Requests ────────────────────────────────────────────────────────────────

// Plain CBOR only: no record extension (tag 105), no tag 259 for maps, no
// tag 64 for Uint8Array (it must be a major type 2 byte string, as serde_bytes
// writes it), and minimal map headers as serde_cbor writes them (cbor-x
// otherwise always uses a 16-bit map length).
const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  tagUint8Array: false,
  pack: false,
  structuredClone: false,
  useTag259ForMaps: false,
} as ConstructorParameters<typeof Encoder>[0]);

function requestError(message: string): AttestationError {
  return new AttestationError("ERR_NSM_REQUEST", message);
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (value instanceof Uint8Array) return `Uint8Array of length ${value.length}`;
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}

/** Encodes and checks the driver's request limit before anything is sent. */
function finish(value: unknown): Uint8Array {
  // Copy: cbor-x returns a view into its reusable scratch buffer.
  const bytes = new Uint8Array(encoder.encode(value));
  if (bytes.length > NSM_REQUEST_MAX_SIZE) {
    throw requestError(`NSM request expected at most ${NSM_REQUEST_MAX_SIZE} bytes, got length=${bytes.length}`);
  }
  return bytes;
}

/**
 * `Option<ByteBuf>`: absent → null; present (even empty) → byte string.
 * The message names the field and the sizes only, never the bytes.
 */
function optionalBytes(value: unknown, field: string, max: number): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (!(value instanceof Uint8Array)) {
    throw requestError(`"${field}" expected Uint8Array, got ${typeName(value)}`);
  }
  if (value.length > max) {
    throw requestError(`"${field}" expected Uint8Array of at most ${max} bytes, got length=${value.length}`);
  }
  // A plain Uint8Array copy: cbor-x then writes it as a byte string, whatever
  // subclass or view the caller passed, and later changes by the caller cannot
  // reach the encoder.
  return new Uint8Array(value);
}

/** `Request::Attestation { user_data, nonce, public_key }`. */
export function encodeAttestationRequest(request: AttestationRequest): Uint8Array {
  if (typeof request !== "object" || request === null) {
    throw requestError(`attestation request expected an object, got ${typeName(request)}`);
  }
  const input = request as Record<string, unknown>;
  return finish({
    Attestation: {
      user_data: optionalBytes(input.userData, "user_data", NSM_MAX_USER_DATA),
      nonce: optionalBytes(input.nonce, "nonce", NSM_MAX_NONCE),
      public_key: optionalBytes(input.publicKey, "public_key", NSM_MAX_PUBLIC_KEY),
    },
  });
}

/** `Request::DescribePCR { index: u16 }`. Whether the index exists is the NSM's call (InvalidIndex). */
export function encodeDescribePcrRequest(index: number): Uint8Array {
  if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 0xffff) {
    const shown = typeof index === "number" ? String(index) : typeName(index);
    throw requestError(`"index" expected an integer in 0..65535 (u16), got ${shown}`);
  }
  return finish({ DescribePCR: { index } });
}

/** `Request::GetRandom` (a unit variant). */
export function encodeGetRandomRequest(): Uint8Array {
  return finish("GetRandom");
}

// ─── Responses ───────────────────────────────────────────────────────────────

export type NsmResponseVariant = "Attestation" | "DescribePCR" | "GetRandom";

function responseError(message: string, cause?: unknown): AttestationError {
  return new AttestationError("ERR_NSM_RESPONSE", message, cause === undefined ? undefined : { cause });
}

/** Names a key or variant only when it is a short identifier; anything else is not echoed. */
function label(value: unknown): string {
  return typeof value === "string" && /^[A-Za-z0-9_]{1,32}$/.test(value) ? `"${value}"` : "an unprintable key";
}

// A response is `{ variant: { field: scalar } }` or `{ "Error": text }`:
// depth 2 and a handful of items. Indefinite-length maps are allowed by the
// strict scan, since real NSM output uses them in documents.
const RESPONSE_SCAN_LIMITS = { maxDepth: 2, maxItems: 32 };

/**
 * Decodes one response and returns the body of the expected struct variant.
 * Every other shape is ERR_NSM_RESPONSE; `Error(code)` names the NSM code.
 */
function decodeVariant(bytes: Uint8Array, expected: NsmResponseVariant): Map<unknown, unknown> {
  if (!(bytes instanceof Uint8Array)) {
    throw responseError(`NSM response to ${expected} expected Uint8Array, got ${typeName(bytes)}`);
  }
  if (bytes.length === 0 || bytes.length > NSM_RESPONSE_MAX_SIZE) {
    throw responseError(`NSM response to ${expected} expected 1..${NSM_RESPONSE_MAX_SIZE} bytes, got length=${bytes.length}`);
  }
  let value: unknown;
  try {
    // Strict: duplicate keys, tags, floats, trailing bytes and bad UTF-8 are
    // refused before cbor-x builds any value.
    value = decodeStrict(bytes, `NSM response to ${expected}`, RESPONSE_SCAN_LIMITS);
  } catch (cause) {
    const detail = isAttestationError(cause) ? `: ${cause.message}` : "";
    throw responseError(`NSM response to ${expected} is not well-formed CBOR${detail}`, cause);
  }

  if (typeof value === "string") {
    // A unit variant (LockPCR, LockPCRs) is never an answer to what we send.
    const what = RESPONSE_VARIANTS.has(value) ? label(value) : "an unknown variant";
    throw responseError(`NSM answered ${what} to ${expected}, expected "${expected}"`);
  }
  if (!(value instanceof Map)) {
    throw responseError(`NSM response to ${expected} expected a one-key map, got ${typeName(value)}`);
  }
  if (value.size !== 1) {
    throw responseError(`NSM response to ${expected} expected a one-key map, got ${value.size} keys`);
  }
  const [variant, body] = value.entries().next().value as [unknown, unknown];
  if (typeof variant !== "string") {
    throw responseError(`NSM response to ${expected} expected a text variant name, got ${typeName(variant)}`);
  }

  if (variant === "Error") {
    if (typeof body === "string" && (NSM_ERROR_CODES as readonly string[]).includes(body)) {
      const cause: NsmErrorCause = { nsmErrorCode: body as NsmErrorCode };
      throw responseError(`NSM returned error ${body} for ${expected}`, cause);
    }
    throw responseError(`NSM returned an unrecognised error code for ${expected}`);
  }
  if (variant !== expected) {
    const what = RESPONSE_VARIANTS.has(variant) ? label(variant) : "an unknown variant";
    throw responseError(`NSM answered ${what} to ${expected}, expected "${expected}"`);
  }
  if (!(body instanceof Map)) {
    throw responseError(`"${expected}" response body expected a map, got ${typeName(body)}`);
  }
  return body;
}

/** Checks that `body` holds exactly `fields`: none missing, none unknown. */
function exactFields(body: Map<unknown, unknown>, variant: NsmResponseVariant, fields: readonly string[]): void {
  for (const key of body.keys()) {
    if (typeof key !== "string" || !fields.includes(key)) {
      throw responseError(`"${variant}" response has unexpected field ${label(key)}`);
    }
  }
  for (const field of fields) {
    if (!body.has(field)) throw responseError(`"${variant}" response lacks field "${field}"`);
  }
}

function bytesField(body: Map<unknown, unknown>, variant: NsmResponseVariant, field: string): Uint8Array {
  const value = body.get(field);
  if (!(value instanceof Uint8Array)) {
    throw responseError(`"${variant}.${field}" expected a byte string, got ${typeName(value)}`);
  }
  // decodeStrict returns views of the input; results never alias it.
  return new Uint8Array(value);
}

/** `Response::Attestation { document }`: the raw COSE_Sign1 bytes, not yet verified. */
export function decodeAttestationResponse(bytes: Uint8Array): Uint8Array {
  const body = decodeVariant(bytes, "Attestation");
  exactFields(body, "Attestation", ["document"]);
  const document = bytesField(body, "Attestation", "document");
  if (document.length === 0) throw responseError(`"Attestation.document" expected a non-empty byte string, got length=0`);
  return document;
}

/** PCR sizes a Nitro document allows: SHA-256, SHA-384 (what Nitro uses) or SHA-512 (docs/attestation_process.md §3.2). */
const PCR_LENGTHS: readonly number[] = [32, 48, 64];

/** `Response::DescribePCR { lock, data }`. */
export function decodeDescribePcrResponse(bytes: Uint8Array): { locked: boolean; data: Uint8Array } {
  const body = decodeVariant(bytes, "DescribePCR");
  exactFields(body, "DescribePCR", ["lock", "data"]);
  const lock = body.get("lock");
  if (typeof lock !== "boolean") {
    throw responseError(`"DescribePCR.lock" expected a boolean, got ${typeName(lock)}`);
  }
  const data = bytesField(body, "DescribePCR", "data");
  if (!PCR_LENGTHS.includes(data.length)) {
    throw responseError(`"DescribePCR.data" expected a byte string of length 32, 48 or 64, got length=${data.length}`);
  }
  return { locked: lock, data };
}

/** `Response::GetRandom { random }`: however many bytes the NSM chose to give. */
export function decodeGetRandomResponse(bytes: Uint8Array): Uint8Array {
  const body = decodeVariant(bytes, "GetRandom");
  exactFields(body, "GetRandom", ["random"]);
  const random = bytesField(body, "GetRandom", "random");
  if (random.length === 0) throw responseError(`"GetRandom.random" expected a non-empty byte string, got length=0`);
  return random;
}
