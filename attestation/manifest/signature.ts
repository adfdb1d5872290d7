import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { decodeStrict, isBytes } from "../cbor-decode.js";
import { readLeadingTag } from "../cbor-scan.js";
import { COSE_ALG_ES384, COSE_SIGN1_TAG, ES384_SIGNATURE_LENGTH, sigStructure } from "../cose-sign1.js";
import { verifyEs384 } from "../es384.js";
import { ClientError } from "../client/errors.js";

/**
 * The detached signature of a measurements manifest (`<manifest>.sig`):
 * one COSE_Sign1 (RFC 9052 §4.2) with a detached payload (§2: payload nil,
 * the content travels separately), tagged 18, binary CBOR:
 *
 *   18([ protected:   bstr .cbor {  1: -35,                 ; alg ES384 (RFC 9053 §2.1)
 *                                   3: "application/vnd.enclave-gateway.manifest+json",
 *                                   4: h'<32 bytes>',       ; kid = SHA-256(SPKI DER)
 *                              -65537: h'<SPKI DER>' },     ; the public key (private-use label)
 *        unprotected: {},
 *        payload:     nil,
 *        signature:   h'<96 bytes r ‖ s>' ])
 *
 * signed over Sig_structure = ["Signature1", protected, h'', <the manifest
 * file's exact bytes>] (RFC 9052 §4.4): the manifest is never parsed and
 * re-serialised for signing or checking, so what a reviewer reads is what
 * was signed. The protected map is written in RFC 8949 §4.2.1 order
 * (1, 3, 4, -65537).
 *
 * Why this shape:
 *  - One algorithm, ES384 on P-384, as in Nitro documents and as AWS KMS
 *    signs with ECC_NIST_P384 keys (so the release key can live in an HSM or
 *    KMS). The verifier never takes the algorithm from the file: it requires
 *    -35 and a P-384 key.
 *  - The content type is protected, so a signature the same key made over
 *    some other kind of COSE payload is not a manifest signature.
 *  - The key travels in the protected header so a relying party can pin just
 *    its SHA-256 (`--policy-pubkey-sha256`); kid must equal SHA-256 of that
 *    key, and the pin must equal kid. Standard COSE tools ignore the
 *    private-use label and find the key by kid.
 *  - Nothing unprotected: the unprotected map must be empty.
 */
export const MANIFEST_CONTENT_TYPE = "application/vnd.enclave-gateway.manifest+json";
export const MANIFEST_SIG_HEADER = { alg: 1, contentType: 3, kid: 4, spki: -65537 } as const;
export const MANIFEST_SIGNATURE_SUFFIX = ".sig";
/** A P-384 SPKI is 120 bytes; the whole signature about 330. */
export const MAX_MANIFEST_SIGNATURE_BYTES = 4096;
const MAX_SPKI_BYTES = 1024;

/** Who must have signed: the SHA-256 of the signing key's SubjectPublicKeyInfo (DER). */
export interface ManifestKeyPin {
  spkiSha256: Uint8Array;
}

export interface VerifiedManifestSignature {
  /** SHA-256 of the signer's SPKI, hex: the pin it matched. */
  keyId: string;
  spki: Uint8Array;
}

function refused(message: string, cause?: unknown): ClientError {
  return new ClientError("ERR_MANIFEST_SIGNATURE", `manifest signature: ${message}`, cause === undefined ? undefined : { cause });
}

export function spkiSha256(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(spki).digest());
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The P-384 public key a signature carries; anything else is refused. */
function p384Key(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (cause) {
    throw refused("the signing key is not a DER SubjectPublicKeyInfo", cause);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "secp384r1") {
    throw refused(`the signing key is ${key.asymmetricKeyType ?? "unknown"} ${key.asymmetricKeyDetails?.namedCurve ?? ""}; ES384 needs a P-384 key`.trim());
  }
  return key;
}

function decodeEnvelope(bytes: Uint8Array): { protectedBytes: Uint8Array; signature: Uint8Array } {
  if (bytes.length > MAX_MANIFEST_SIGNATURE_BYTES) throw refused(`${bytes.length} bytes, at most ${MAX_MANIFEST_SIGNATURE_BYTES}`);
  let outer: unknown;
  try {
    const { tag, offset } = readLeadingTag(bytes);
    if (tag !== COSE_SIGN1_TAG) throw refused(`expected a COSE_Sign1 tagged ${COSE_SIGN1_TAG}, got ${tag === null ? "no tag" : `tag ${tag}`}`);
    outer = decodeStrict(bytes.subarray(offset), "manifest signature", { maxDepth: 3, maxItems: 16 });
  } catch (err) {
    if (err instanceof ClientError) throw err;
    throw refused("not well-formed CBOR", err);
  }
  if (!Array.isArray(outer) || outer.length !== 4) throw refused("expected a COSE_Sign1 array of 4 items");
  const [protectedBytes, unprotected, payload, signature] = outer as unknown[];
  if (!isBytes(protectedBytes)) throw refused("protected header must be a byte string");
  if (!(unprotected instanceof Map) || unprotected.size !== 0) throw refused("unprotected header must be an empty map");
  if (payload !== null) throw refused("payload must be nil: the signature is detached, the manifest file is the payload");
  if (!isBytes(signature) || signature.length !== ES384_SIGNATURE_LENGTH) throw refused(`signature must be ${ES384_SIGNATURE_LENGTH} bytes (ES384 r ‖ s)`);
  return { protectedBytes, signature };
}

function decodeProtected(protectedBytes: Uint8Array): { kid: Uint8Array; spki: Uint8Array } {
  let header: unknown;
  try {
    header = decodeStrict(protectedBytes, "manifest signature protected header", { maxDepth: 2, maxItems: 16 });
  } catch (cause) {
    throw refused("protected header is not well-formed CBOR", cause);
  }
  const expected: number[] = Object.values(MANIFEST_SIG_HEADER);
  if (!(header instanceof Map) || header.size !== expected.length || !expected.every((label) => header.has(label))) {
    throw refused(`protected header must hold exactly the labels ${expected.join(", ")}`);
  }
  if (header.get(MANIFEST_SIG_HEADER.alg) !== COSE_ALG_ES384)
    throw refused(`alg ${String(header.get(MANIFEST_SIG_HEADER.alg))} is not allowed, expected ES384 (${COSE_ALG_ES384})`);
  if (header.get(MANIFEST_SIG_HEADER.contentType) !== MANIFEST_CONTENT_TYPE) throw refused(`content type must be "${MANIFEST_CONTENT_TYPE}"`);
  const kid: unknown = header.get(MANIFEST_SIG_HEADER.kid);
  const spki: unknown = header.get(MANIFEST_SIG_HEADER.spki);
  if (!isBytes(kid) || kid.length !== 32) throw refused("kid must be 32 bytes (SHA-256 of the signing key's SPKI)");
  if (!isBytes(spki) || spki.length === 0 || spki.length > MAX_SPKI_BYTES)
    throw refused(`the key (label ${MANIFEST_SIG_HEADER.spki}) must be 1..${MAX_SPKI_BYTES} bytes of SPKI DER`);
  return { kid, spki };
}

/**
 * Checks a detached manifest signature, in this order: size → COSE_Sign1
 * shape → protected header → kid equals SHA-256 of the carried key → kid
 * equals the pin → P-384 key → ES384 over the manifest's exact bytes.
 * Resolves only when every check passed; otherwise throws
 * ERR_MANIFEST_SIGNATURE (a pin that is not 32 bytes: ERR_POLICY_INVALID).
 */
export async function verifyManifestSignature(manifest: Uint8Array, signatureFile: Uint8Array, pin: ManifestKeyPin): Promise<VerifiedManifestSignature> {
  if (!pin || !(pin.spkiSha256 instanceof Uint8Array) || pin.spkiSha256.length !== 32) {
    throw new ClientError("ERR_POLICY_INVALID", "the manifest signing-key pin must be the 32-byte SHA-256 of the key's SPKI");
  }
  if (!(manifest instanceof Uint8Array) || !(signatureFile instanceof Uint8Array)) throw refused("manifest and signature must be bytes");
  const { protectedBytes, signature } = decodeEnvelope(signatureFile);
  const { kid, spki } = decodeProtected(protectedBytes);
  if (!Buffer.from(spkiSha256(spki)).equals(Buffer.from(kid))) throw refused("kid is not the SHA-256 of the key the signature carries");
  if (!Buffer.from(kid).equals(Buffer.from(pin.spkiSha256))) {
    throw refused(`signed by key sha256:${hex(kid)}, not by the pinned key sha256:${hex(pin.spkiSha256)}`);
  }
  const key = p384Key(spki);
  // One message for every cryptographic failure: which byte was wrong is not told.
  if (!(await verifyEs384(sigStructure(protectedBytes, manifest), key, signature, "ieee-p1363"))) {
    throw refused("the signature does not verify over the manifest bytes");
  }
  return { keyId: hex(kid), spki: new Uint8Array(spki) };
}
