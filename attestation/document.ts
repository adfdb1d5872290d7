import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { AttestationError } from "./errors.js";
import type { AttestationDocument } from "./types.js";

/**
 * Field rules from the AWS NSM API (docs/attestation_process.md §3.2 and
 * "3.2.1 Syntactical validation"): each is checked here, one named error per
 * rule, before any signature or chain work looks at the values.
 */
export const PCR_MAX_INDEX = 31;
export const PCR_LENGTH_SHA384 = 48;
export const MAX_CERT_BYTES = 1024;
export const MAX_CABUNDLE = 8; // AWS chains have 4; anything past 8 is junk.
export const MAX_OPTIONAL_FIELD_BYTES = 1024;
export const MAX_MODULE_ID_BYTES = 256;

const KNOWN_FIELDS = new Set(["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"]);

function field(message: string): AttestationError {
  return new AttestationError("ERR_DOC_FIELD", message);
}

function optionalBytes(map: Map<unknown, unknown>, name: string, min: number): Uint8Array | null {
  const value = map.get(name);
  // Real hardware encodes an absent optional field as CBOR null (2026 fixture).
  if (value === undefined || value === null) return null;
  if (!isBytes(value)) throw field(`${name} must be a byte string or null`);
  if (value.length < min || value.length > MAX_OPTIONAL_FIELD_BYTES) {
    throw field(`${name} is ${value.length} bytes, allowed ${min}..${MAX_OPTIONAL_FIELD_BYTES}`);
  }
  return copyBytes(value);
}

function certBytes(value: unknown, name: string): Uint8Array {
  if (!isBytes(value)) throw field(`${name} must be a byte string`);
  if (value.length < 1 || value.length > MAX_CERT_BYTES) {
    throw field(`${name} is ${value.length} bytes, allowed 1..${MAX_CERT_BYTES}`);
  }
  return copyBytes(value);
}

function parsePcrs(value: unknown): Map<number, Uint8Array> {
  if (!(value instanceof Map)) throw field("pcrs must be a map");
  if (value.size < 1 || value.size > PCR_MAX_INDEX + 1) {
    throw new AttestationError("ERR_PCR_INVALID", `pcrs has ${value.size} entries, allowed 1..${PCR_MAX_INDEX + 1}`);
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, digest] of value) {
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > PCR_MAX_INDEX) {
      throw new AttestationError("ERR_PCR_INVALID", `PCR index ${String(index)} is not an integer in 0..${PCR_MAX_INDEX}`);
    }
    if (!isBytes(digest)) throw new AttestationError("ERR_PCR_INVALID", `PCR${index} must be a byte string`);
    // The spec allows 32/48/64 for SHA256/384/512; the digest field is pinned
    // to SHA384 below, so every PCR must be exactly 48 bytes.
    if (digest.length !== PCR_LENGTH_SHA384) {
      throw new AttestationError("ERR_PCR_INVALID", `PCR${index} expected length ${PCR_LENGTH_SHA384}, got length=${digest.length}`);
    }
    pcrs.set(index, copyBytes(digest));
  }
  return new Map([...pcrs.entries()].sort((a, b) => a[0] - b[0]));
}

/** Parses and syntactically validates the COSE payload of a Nitro document. */
export function parseDocumentPayload(payload: Uint8Array): AttestationDocument {
  const map = decodeStrict(payload, "attestation document payload");
  if (!(map instanceof Map)) throw field("payload must be a CBOR map");
  for (const key of map.keys()) {
    if (typeof key !== "string") throw new AttestationError("ERR_DOC_UNKNOWN_FIELD", "payload has a non-text key");
    if (!KNOWN_FIELDS.has(key)) {
      // Printable, bounded: a key name is structure, not content.
      const shown = key.slice(0, 32).replace(/[^\x20-\x7e]/g, "?");
      throw new AttestationError("ERR_DOC_UNKNOWN_FIELD", `payload has unknown field "${shown}"`);
    }
  }

  const moduleId = map.get("module_id");
  if (typeof moduleId !== "string") throw field("module_id must be text");
  if (moduleId.length === 0 || Buffer.byteLength(moduleId) > MAX_MODULE_ID_BYTES) {
    throw field(`module_id must be 1..${MAX_MODULE_ID_BYTES} bytes`);
  }

  const digest = map.get("digest");
  if (digest !== "SHA384") throw field(`digest must be "SHA384"`);

  const timestamp = map.get("timestamp");
  if (typeof timestamp !== "number" || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw field("timestamp must be a positive integer (milliseconds)");
  }

  const pcrs = parsePcrs(map.get("pcrs"));
  const certificate = certBytes(map.get("certificate"), "certificate");

  const bundle = map.get("cabundle");
  if (!Array.isArray(bundle)) throw field("cabundle must be an array");
  if (bundle.length < 1 || bundle.length > MAX_CABUNDLE) {
    throw field(`cabundle has ${bundle.length} certificates, allowed 1..${MAX_CABUNDLE}`);
  }
  const cabundle = bundle.map((cert: unknown, i) => certBytes(cert, `cabundle[${i}]`));

  return {
    moduleId,
    digest,
    timestamp,
    pcrs,
    certificate,
    cabundle,
    // public_key is 1..1024 in the spec; user_data and nonce may be empty.
    publicKey: optionalBytes(map, "public_key", 1),
    userData: optionalBytes(map, "user_data", 0),
    nonce: optionalBytes(map, "nonce", 0),
  };
}
