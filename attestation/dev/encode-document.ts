/**
 * Encodes Nitro attestation documents byte for byte the way the Nitro Secure
 * Module does, so that the simulated NSM exercises the same decoder and
 * verifier paths as real hardware.
 *
 * Layout (AWS aws-nitro-enclaves-nsm-api, docs/attestation_process.md §3.2;
 * checked against documents from real hardware):
 *  - COSE_Sign1 (RFC 9052 §4.2) as an UNTAGGED array of four items:
 *    [protected bstr, unprotected {}, payload bstr, signature bstr]
 *  - protected = bstr wrapping {1: -35} (alg ES384), i.e. a1 01 38 22
 *  - payload = a definite-length map with text keys in this order:
 *    module_id, digest, timestamp, pcrs, certificate, cabundle, public_key,
 *    user_data, nonce; absent optional fields are CBOR null (f6)
 *  - signature = ES384 over Sig_structure ["Signature1", protected, h'',
 *    payload] (RFC 9052 §4.4), as r ‖ s, 96 bytes (IEEE P1363)
 *
 * Only definite-length items are emitted, integers use the shortest head,
 * and no CBOR tags are written.
 */
import { webcrypto } from "node:crypto";
import { NSM_MAX_NONCE, NSM_MAX_PUBLIC_KEY, NSM_MAX_USER_DATA } from "../attester.js";
import { COSE_ALG_ES384, ES384_SIGNATURE_LENGTH, sigStructure } from "../cose-sign1.js";
import { MAX_CABUNDLE, MAX_CERT_BYTES, MAX_MODULE_ID_BYTES, PCR_LENGTH_SHA384, PCR_MAX_INDEX } from "../document.js";
import { encodeCbor } from "../cbor-encode.js";
import { AttestationError } from "../errors.js";
import type { AttestationDocument } from "../types.js";

// The encoder's limits are the verifier's: it must never issue what the
// verifier would refuse.
export { COSE_ALG_ES384, ES384_SIGNATURE_LENGTH, MAX_CABUNDLE };
export const PCR_LENGTH = PCR_LENGTH_SHA384;
/** The NSM has 32 PCRs; documents from hardware carry indexes 0..15. */
export const NSM_PCR_COUNT = PCR_MAX_INDEX + 1;
export const NSM_MAX_CERT = MAX_CERT_BYTES;
export const MAX_MODULE_ID = MAX_MODULE_ID_BYTES;

const encodeItem = encodeCbor;

/** The protected header every NSM document carries: bstr contents of {1: -35}. */
export function es384ProtectedHeader(): Uint8Array {
  return Uint8Array.of(0xa1, 0x01, 0x38, 0x22);
}

function requestError(message: string): AttestationError {
  return new AttestationError("ERR_NSM_REQUEST", message);
}

function checkBytes(name: string, value: unknown, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw requestError(`"${name}" expected Uint8Array, got ${typeof value}`);
  }
  if (value.length < min || value.length > max) {
    throw requestError(`"${name}" expected ${min}..${max} bytes, got length=${value.length}`);
  }
  return value;
}

function checkOptionalBytes(name: string, value: unknown, max: number): Uint8Array | null {
  if (value === null) return null;
  return checkBytes(name, value, 0, max);
}

/**
 * Encodes the attestation document payload (the map that COSE_Sign1 signs).
 * PCRs are written in ascending index order whatever the Map's order.
 */
export function encodeDocumentPayload(doc: AttestationDocument): Uint8Array {
  if (typeof doc.moduleId !== "string" || doc.moduleId.length === 0 || doc.moduleId.length > MAX_MODULE_ID) {
    throw requestError(`"module_id" expected a string of 1..${MAX_MODULE_ID} characters`);
  }
  if (doc.digest !== "SHA384") {
    throw requestError(`"digest" expected "SHA384"`);
  }
  if (!Number.isSafeInteger(doc.timestamp) || doc.timestamp < 0) {
    throw requestError(`"timestamp" expected a non-negative safe integer (ms), got ${String(doc.timestamp)}`);
  }
  if (!(doc.pcrs instanceof Map) || doc.pcrs.size === 0) {
    throw requestError(`"pcrs" expected a non-empty Map`);
  }
  const indexes = [...doc.pcrs.keys()].sort((a, b) => a - b);
  const pcrs = new Map<number, Uint8Array>();
  for (const index of indexes) {
    if (!Number.isInteger(index) || index < 0 || index >= NSM_PCR_COUNT) {
      throw requestError(`"pcrs" index expected an integer 0..${NSM_PCR_COUNT - 1}, got ${String(index)}`);
    }
    pcrs.set(index, checkBytes(`pcr${index}`, doc.pcrs.get(index), PCR_LENGTH, PCR_LENGTH));
  }
  const certificate = checkBytes("certificate", doc.certificate, 1, NSM_MAX_CERT);
  if (!Array.isArray(doc.cabundle) || doc.cabundle.length === 0 || doc.cabundle.length > MAX_CABUNDLE) {
    throw requestError(`"cabundle" expected 1..${MAX_CABUNDLE} certificates`);
  }
  const cabundle = doc.cabundle.map((cert, i) => checkBytes(`cabundle[${i}]`, cert, 1, NSM_MAX_CERT));

  // Insertion order is the wire order; keep it identical to the NSM's.
  const payload = new Map<string, unknown>([
    ["module_id", doc.moduleId],
    ["digest", doc.digest],
    ["timestamp", BigInt(doc.timestamp)],
    ["pcrs", pcrs],
    ["certificate", certificate],
    ["cabundle", cabundle],
    ["public_key", checkOptionalBytes("public_key", doc.publicKey, NSM_MAX_PUBLIC_KEY)],
    ["user_data", checkOptionalBytes("user_data", doc.userData, NSM_MAX_USER_DATA)],
    ["nonce", checkOptionalBytes("nonce", doc.nonce, NSM_MAX_NONCE)],
  ]);
  return encodeItem(payload);
}

/** Sig_structure for COSE_Sign1 (RFC 9052 §4.4), over the exact header and payload bytes. */
export function encodeSigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return sigStructure(protectedBytes, payload);
}

/** The untagged COSE_Sign1 array, with an empty unprotected header as the NSM sends it. */
export function encodeCoseSign1(protectedBytes: Uint8Array, payload: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== ES384_SIGNATURE_LENGTH) {
    throw requestError(`"signature" expected Uint8Array of length ${ES384_SIGNATURE_LENGTH}, got length=${signature.length}`);
  }
  return encodeItem([protectedBytes, new Map(), payload, signature]);
}

/**
 * Signs `payload` as the NSM does and returns the COSE_Sign1 bytes.
 * `signingKey` is an ECDSA P-384 private key (the leaf certificate's key).
 * WebCrypto returns ECDSA signatures as r ‖ s already, the form COSE uses.
 */
export async function signCoseSign1(payload: Uint8Array, signingKey: webcrypto.CryptoKey): Promise<Uint8Array> {
  const protectedBytes = es384ProtectedHeader();
  const toBeSigned = encodeSigStructure(protectedBytes, payload);
  const signature = new Uint8Array(await webcrypto.subtle.sign({ name: "ECDSA", hash: "SHA-384" }, signingKey, toBeSigned));
  return encodeCoseSign1(protectedBytes, payload, signature);
}
