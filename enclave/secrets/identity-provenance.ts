import { createHash, timingSafeEqual } from "node:crypto";
import { decodeStrict, isBytes } from "../../attestation/cbor-decode.js";
import { encodeCbor } from "../../attestation/cbor-encode.js";
import { decodeCoseSign1 } from "../../attestation/cose-sign1.js";
import { parseDocumentPayload } from "../../attestation/document.js";
import type { TrustAnchor } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { signingSpki, type IdentityKeys } from "./identity-blob.js";
import { MAX_IDENTITY_ATTESTATION_BYTES, SealedSecretsError, type SealedIdentityBlob } from "../../host/transport/codec/sealed-file.js";

/**
 * Provenance of a sealed identity: the blob carries the attestation document
 * of the enclave that generated it, and an enclave opens a blob only when
 * that document proves an enclave of an accepted image made exactly these
 * keys under exactly the pinned KMS key.
 *
 * Why: KMS guards the data key, but a host that can have the identity
 * sealed under a key of its own (its own account, an alias it resolves, a
 * blob built offline with a data key it asked its own KMS for) knows the
 * TLS and receipt keys. The KeyId checks (key-arn.ts) close the first
 * doors; this closes the rest — a blob whose keys did not come out of a
 * measured enclave has no document, and a document cannot be made for keys
 * the NSM never saw.
 *
 * The generator's document (AWS NSM API, Attestation request):
 *   public_key = SPKI of the signing receipt key
 *   user_data  = definite-length CBOR map, exactly these keys in this order:
 *     { "purpose": "egw-identity-v1",
 *       "tls_spki_sha256": bstr32,
 *       "receipt_keys_sha256": bstr32,   SHA-256(SPKI(signing) ‖ SPKI(retired[0]) ‖ …)
 *       "blob_sha256": bstr32,           SHA-256(dataKey ‖ iv ‖ sealed)
 *       "key_arn": tstr }
 * The serving enclave's channel binding (attestation/binding.ts) is a
 * different map (its first key is "v", and it never has "purpose"), so a
 * document from the public /v1/attestation endpoint can never pass as one.
 * The blob hash does not cover the attestation field: the document is made
 * after the blob, over it.
 */
export const IDENTITY_ATTESTATION_PURPOSE = "egw-identity-v1";
/** PCR0 image, PCR1 kernel + bootstrap, PCR2 application (AWS "Where to get an enclave's measurements"). */
const IMAGE_PCRS = [0, 1, 2] as const;
const KEYS = ["purpose", "tls_spki_sha256", "receipt_keys_sha256", "blob_sha256", "key_arn"] as const;

export interface IdentityClaims {
  tlsSpkiSha256: Uint8Array;
  receiptKeysSha256: Uint8Array;
  blobSha256: Uint8Array;
  keyArn: string;
}

const provenance = (message: string): SealedSecretsError => new SealedSecretsError("ERR_IDENTITY_PROVENANCE", `sealed identity: ${message}`);
const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && timingSafeEqual(a, b);

export function identityBlobSha256(blob: Pick<SealedIdentityBlob, "dataKey" | "iv" | "sealed">): Uint8Array {
  return sha256(blob.dataKey, blob.iv, blob.sealed);
}

/** SHA-256 of the TLS key's SPKI and of the receipt keys' SPKIs (signing first, then retired in order). */
export function identityKeyHashes(keys: IdentityKeys): { tlsSpkiSha256: Uint8Array; receiptKeysSha256: Uint8Array; signingSpki: Uint8Array } {
  const signing = signingSpki(keys.signing.pkcs8);
  return {
    tlsSpkiSha256: sha256(tlsSpki(keys.tlsPkcs8)),
    receiptKeysSha256: sha256(signing, ...keys.retired.map((k) => k.spki)),
    signingSpki: signing,
  };
}

function tlsSpki(pkcs8: Uint8Array): Uint8Array {
  // Same derivation as the TLS certificate's key (enclave/identity.ts): the public half of the PKCS#8 key.
  return signingSpki(pkcs8);
}

export function encodeIdentityClaims(claims: IdentityClaims): Uint8Array {
  return encodeCbor(
    new Map<string, unknown>([
      ["purpose", IDENTITY_ATTESTATION_PURPOSE],
      ["tls_spki_sha256", Buffer.from(claims.tlsSpkiSha256)],
      ["receipt_keys_sha256", Buffer.from(claims.receiptKeysSha256)],
      ["blob_sha256", Buffer.from(claims.blobSha256)],
      ["key_arn", claims.keyArn],
    ]),
  );
}

/**
 * Exactly the map above: strict CBOR, these five keys, these types, and the
 * bytes re-encode to themselves (definite lengths, this key order), so one
 * claim has one encoding.
 */
export function decodeIdentityClaims(userData: Uint8Array | null): IdentityClaims {
  if (userData === null || userData.length === 0) throw provenance("the generator's attestation has no user_data");
  let map: unknown;
  try {
    map = decodeStrict(userData, "identity user_data");
  } catch {
    throw provenance("the generator's user_data is not strict CBOR");
  }
  if (!(map instanceof Map) || map.size !== KEYS.length || !KEYS.every((k) => map.has(k))) throw provenance("the generator's user_data is not an identity claim map");
  if (map.get("purpose") !== IDENTITY_ATTESTATION_PURPOSE) throw provenance(`the generator's user_data purpose is not "${IDENTITY_ATTESTATION_PURPOSE}"`);
  const hash = (key: string): Uint8Array => {
    const v = map.get(key);
    if (!isBytes(v) || v.length !== 32) throw provenance(`the generator's user_data ${key} is not 32 bytes`);
    return new Uint8Array(v);
  };
  const keyArn = map.get("key_arn");
  if (typeof keyArn !== "string" || keyArn.length === 0 || keyArn.length > 2048) throw provenance("the generator's user_data key_arn is not a key name");
  const claims = { tlsSpkiSha256: hash("tls_spki_sha256"), receiptKeysSha256: hash("receipt_keys_sha256"), blobSha256: hash("blob_sha256"), keyArn };
  if (!equal(encodeIdentityClaims(claims), userData)) throw provenance("the generator's user_data is not in its one encoding (definite lengths, fixed key order)");
  return claims;
}

/** PCRs 0..2 of a document this enclave's own attester just issued (trusted: it is our own NSM's answer). */
export function ownImagePcrs(ownDocument: Uint8Array): ReadonlyMap<number, Uint8Array> {
  const doc = parseDocumentPayload(decodeCoseSign1(ownDocument).payload);
  const out = new Map<number, Uint8Array>();
  for (const i of IMAGE_PCRS) {
    const v = doc.pcrs.get(i);
    if (v === undefined) throw provenance(`this enclave's own attestation lacks PCR${i}`);
    out.set(i, v);
  }
  return out;
}

export interface VerifyGeneratorOptions {
  /** The generator's document (the blob's `attestation` field). */
  document: Uint8Array;
  blob: Pick<SealedIdentityBlob, "dataKey" | "iv" | "sealed">;
  /** The pinned identity key ARN; the document must name it. */
  keyArn: string;
  /** AWS Nitro root on hardware; the simulated NSM's development root in development. Never both by accident: the caller decides. */
  trustedRoots: TrustAnchor[];
  /** PCRs 0..2 of this enclave (ownImagePcrs). */
  ownPcrs: ReadonlyMap<number, Uint8Array>;
  /** Other images whose identities this one accepts (rollouts), each naming PCRs 0, 1 and 2. */
  generatorPcrs?: ReadonlyArray<ReadonlyMap<number, Uint8Array>>;
  /** Development: a debug-mode (all-zero PCR0) generator is accepted. */
  dev: boolean;
}

/**
 * Verifies the generator's document before any key of the blob is used.
 * Returns the claims; checkIdentityAgainstClaims then checks the keys once
 * they are decrypted. Every failure is ERR_IDENTITY_PROVENANCE with the
 * cause (the verifier's code), never bytes of the blob.
 */
export async function verifyGeneratorAttestation(options: VerifyGeneratorOptions): Promise<{ claims: IdentityClaims; publicKey: Uint8Array }> {
  const { document } = options;
  if (!(document instanceof Uint8Array) || document.length === 0) throw provenance("the blob carries no attestation of the enclave that generated it");
  if (document.length > MAX_IDENTITY_ATTESTATION_BYTES) throw provenance(`the generator's attestation is over ${MAX_IDENTITY_ATTESTATION_BYTES} bytes`);
  const accepted = [options.ownPcrs, ...(options.generatorPcrs ?? [])];
  for (const set of accepted) {
    for (const i of IMAGE_PCRS) {
      if (!(set.get(i) instanceof Uint8Array)) throw new TypeError(`"generatorPcrs": every set must name PCR${i}`);
    }
  }
  let timestamp: number;
  try {
    timestamp = parseDocumentPayload(decodeCoseSign1(document).payload).timestamp;
  } catch (err) {
    throw provenance(`the generator's attestation is not a Nitro document (${codeOf(err)})`);
  }
  let result;
  try {
    // The chain is checked at the document's own timestamp, and no maximum
    // age applies: a blob may be months old, while Nitro leaf certificates
    // live three hours. What must hold is that a genuine NSM signed it when
    // it was made (AWS "Verifying the root of trust", step 3, with the
    // document's time as the validation time). The NSM signs the timestamp,
    // so it cannot be moved to a moment a stolen leaf was valid.
    result = await verifyAttestation(document, {
      currentDate: new Date(timestamp),
      expectedPcrs: "any",
      trustedRoots: options.trustedRoots,
      maxAgeMs: Infinity,
      allowDebug: options.dev,
    });
  } catch (err) {
    throw provenance(`the generator's attestation does not verify (${codeOf(err)})`);
  }
  const pcrs = result.document.pcrs;
  const matches = (set: ReadonlyMap<number, Uint8Array>) => IMAGE_PCRS.every((i) => pcrs.get(i) !== undefined && equal(pcrs.get(i)!, set.get(i)!));
  if (!accepted.some(matches)) throw provenance("the generator's PCR0..2 are neither this image's nor an accepted generator's");
  const claims = decodeIdentityClaims(result.document.userData);
  if (claims.keyArn !== options.keyArn) throw provenance("the generator sealed this identity under another KMS key than the pinned one");
  if (!equal(claims.blobSha256, identityBlobSha256(options.blob))) throw provenance("the generator's attestation is for another blob");
  if (result.document.publicKey === null) throw provenance("the generator's attestation has no public_key");
  return { claims, publicKey: new Uint8Array(result.document.publicKey) };
}

/** After decryption: the keys are the ones the generator attested. */
export function checkIdentityAgainstClaims(keys: IdentityKeys, attested: { claims: IdentityClaims; publicKey: Uint8Array }): void {
  const hashes = identityKeyHashes(keys);
  if (!equal(hashes.tlsSpkiSha256, attested.claims.tlsSpkiSha256)) throw provenance("the TLS key is not the one the generator attested");
  if (!equal(hashes.receiptKeysSha256, attested.claims.receiptKeysSha256)) throw provenance("the receipt keys are not the ones the generator attested");
  if (!equal(hashes.signingSpki, attested.publicKey)) throw provenance("the generator's public_key is not the signing receipt key");
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" ? code : "error";
}
