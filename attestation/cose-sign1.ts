import { decodeStrict, isBytes } from "./cbor-decode.js";
import { readLeadingTag } from "./cbor-scan.js";
import { AttestationError } from "./errors.js";
import type { DecodedCoseSign1 } from "./types.js";

/** COSE algorithm ES384 (RFC 9053 §2.1). The only one Nitro uses. */
export const COSE_ALG_ES384 = -35;
/** CBOR tag for COSE_Sign1 (RFC 9052 §2). */
export const COSE_SIGN1_TAG = 18;
/** ES384 signatures are r ‖ s, 48 bytes each (RFC 9053 §2.1). */
export const ES384_SIGNATURE_LENGTH = 96;
/**
 * Largest document accepted. The NSM response buffer is 0x3000 bytes
 * (NSM_RESPONSE_MAX_SIZE), so nothing real is larger than 12 KiB; 16 KiB
 * leaves headroom for a tag and future fields without letting junk in.
 */
export const MAX_DOCUMENT_BYTES = 16 * 1024;

function structure(message: string): AttestationError {
  return new AttestationError("ERR_COSE_STRUCTURE", `COSE_Sign1: ${message}`);
}

/**
 * Decodes a COSE_Sign1 (RFC 9052 §4.2), tagged or untagged:
 *   COSE_Sign1 = [ protected: bstr .cbor header_map, unprotected: header_map,
 *                  payload: bstr, signature: bstr ]
 * and applies the Nitro profile: protected header exactly {1: -35},
 * unprotected header empty, 96-byte signature.
 */
export function decodeCoseSign1(bytes: Uint8Array): DecodedCoseSign1 {
  return decodeCoseSign1Profile(bytes, NITRO_PROFILE);
}

/** What a COSE_Sign1 must look like: one algorithm, its signature size, a size bound. */
export interface CoseProfile {
  alg: number;
  algName: string;
  signatureLength: number;
  maxBytes: number;
}

export const NITRO_PROFILE: CoseProfile = { alg: COSE_ALG_ES384, algName: "ES384", signatureLength: ES384_SIGNATURE_LENGTH, maxBytes: MAX_DOCUMENT_BYTES };

export function decodeCoseSign1Profile(bytes: Uint8Array, profile: CoseProfile): DecodedCoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw structure("input must be bytes");
  if (bytes.length > profile.maxBytes) {
    throw new AttestationError("ERR_INPUT_TOO_LARGE", `COSE_Sign1 is ${bytes.length} bytes, limit is ${profile.maxBytes}`);
  }
  const { tag, offset } = readLeadingTag(bytes);
  if (tag !== null && tag !== COSE_SIGN1_TAG) throw structure(`unexpected tag ${tag}, expected 18 or none`);
  const outer = decodeStrict(bytes.subarray(offset), "COSE_Sign1");
  if (!Array.isArray(outer) || outer.length !== 4) throw structure("expected an array of 4 items");
  const [protectedBytes, unprotected, payload, signature] = outer as unknown[];
  if (!isBytes(protectedBytes)) throw structure("protected header must be a byte string");
  if (!(unprotected instanceof Map)) throw structure("unprotected header must be a map");
  if (!isBytes(payload)) throw structure("payload must be a byte string (detached payloads are not allowed)");
  if (!isBytes(signature)) throw structure("signature must be a byte string");
  if (payload.length === 0) throw structure("payload is empty");

  const alg = readProtectedAlg(protectedBytes, profile);
  // AWS documents carry an empty unprotected header. Anything there would be
  // unauthenticated, so refuse rather than ignore it.
  if (unprotected.size !== 0) throw structure("unprotected header must be empty");
  if (signature.length !== profile.signatureLength) {
    throw structure(`signature is ${signature.length} bytes, ${profile.algName} requires ${profile.signatureLength}`);
  }
  return { tagged: tag !== null, protectedBytes, payload, signature, alg };
}

function readProtectedAlg(protectedBytes: Uint8Array, profile: CoseProfile): number {
  if (protectedBytes.length === 0) throw new AttestationError("ERR_COSE_ALG", "protected header is empty: no algorithm");
  const header = decodeStrict(protectedBytes, "protected header");
  if (!(header instanceof Map)) throw structure("protected header must encode a map");
  const alg: unknown = header.get(1);
  if (alg === undefined) throw new AttestationError("ERR_COSE_ALG", "protected header has no alg (label 1)");
  if (alg !== profile.alg) {
    throw new AttestationError("ERR_COSE_ALG", `alg ${String(alg)} is not allowed, expected ${profile.algName} (${profile.alg})`);
  }
  // Any other protected label (crit, content type, kid…) is outside the
  // Nitro profile; accepting it would mean honouring semantics we don't check.
  if (header.size !== 1) throw structure("protected header has labels other than alg");
  return alg;
}

function bstrHeader(length: number): Uint8Array {
  if (length < 24) return Uint8Array.of(0x40 | length);
  if (length < 0x100) return Uint8Array.of(0x58, length);
  if (length < 0x10000) return Uint8Array.of(0x59, length >> 8, length & 0xff);
  return Uint8Array.of(0x5a, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff);
}

const SIGNATURE1_CONTEXT = Uint8Array.of(0x6a, ...new TextEncoder().encode("Signature1"));

/**
 * Sig_structure = ["Signature1", body_protected, external_aad, payload]
 * (RFC 9052 §4.4), with external_aad = h''. Built by hand around the exact
 * protected and payload bytes received: nothing is decoded and re-encoded.
 */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(0x84), SIGNATURE1_CONTEXT, bstrHeader(protectedBytes.length), protectedBytes, Uint8Array.of(0x40), bstrHeader(payload.length), payload]);
}
