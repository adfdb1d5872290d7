import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { encodeCbor } from "../cbor-encode.js";
import { COSE_ALG_ES384, COSE_SIGN1_TAG, sigStructure } from "../cose-sign1.js";
import { MANIFEST_CONTENT_TYPE, MANIFEST_SIG_HEADER, verifyManifestSignature } from "./signature.js";
import { ReleaseError } from "./errors.js";

/**
 * Signs a manifest's exact bytes into the detached COSE_Sign1 that
 * attestation/manifest/signature.ts documents and verifies (ES384,
 * key in the protected header, kid = SHA-256 of its SPKI). node:crypto only.
 */

const MAX_PEM_BYTES = 16 * 1024;

function isP384(key: KeyObject): boolean {
  return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "secp384r1";
}

const P384_HINT = "generate one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out manifest-signing.key";

/** A P-384 private key from PEM (PKCS#8 or SEC1). Encrypted PEM is refused: pass the key decrypted, e.g. through a pipe. */
export function loadSigningKey(pem: string): KeyObject {
  if (pem.length > MAX_PEM_BYTES) throw new ReleaseError("ERR_SIGNING_KEY", "the key file is too large to be a PEM private key");
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new ReleaseError(
      "ERR_SIGNING_KEY",
      "the private key is encrypted; egw reads unencrypted PEM only: decrypt it into a pipe, e.g. openssl pkey -in key.enc | egw manifest sign --key - …",
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch (cause) {
    throw new ReleaseError("ERR_SIGNING_KEY", "not a PEM private key", { cause });
  }
  if (!isP384(key)) throw new ReleaseError("ERR_SIGNING_KEY", `the key is ${key.asymmetricKeyType ?? "unknown"}, ES384 needs an EC P-384 key; ${P384_HINT}`);
  return key;
}

/** The SubjectPublicKeyInfo (DER) of a public key given as PEM "PUBLIC KEY": exactly one block, P-384. */
export function publicKeySpkiFromPem(pem: string): Uint8Array {
  if (pem.length > MAX_PEM_BYTES) throw new ReleaseError("ERR_SIGNING_KEY", "the file is too large to be a PEM public key");
  // A private key would also yield a public key; a pin file must not be one.
  const blocks = pem.match(/-----BEGIN [A-Z ]+-----/g) ?? [];
  if (blocks.length !== 1 || blocks[0] !== "-----BEGIN PUBLIC KEY-----")
    throw new ReleaseError("ERR_SIGNING_KEY", 'expected exactly one PEM "PUBLIC KEY" block (SubjectPublicKeyInfo)');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (cause) {
    throw new ReleaseError("ERR_SIGNING_KEY", "not a PEM public key", { cause });
  }
  if (!isP384(key)) throw new ReleaseError("ERR_SIGNING_KEY", `the key is ${key.asymmetricKeyType ?? "unknown"}, manifest signatures use EC P-384 keys`);
  return spkiOf(key);
}

export function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: "spki", format: "der" }));
}

export function spkiSha256Hex(spki: Uint8Array): string {
  return createHash("sha256").update(spki).digest("hex");
}

/** A pin given as hex: the 32-byte SHA-256 of the SPKI (what `openssl pkey -pubin -outform DER | sha256sum` prints). */
export function parseKeyPinHex(text: string): Uint8Array {
  const value = text.startsWith("sha256:") ? text.slice(7) : text;
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new ReleaseError("ERR_SIGNING_KEY", "a key pin is the SHA-256 of the key's SPKI: 64 hex digits");
  return new Uint8Array(Buffer.from(value, "hex"));
}

/**
 * Signs `manifest` (the file's exact bytes) and returns the tagged
 * COSE_Sign1 to write beside it. The result is verified before it is
 * returned, so a faulty key or encoder never produces a published .sig.
 */
export async function signManifest(manifest: Uint8Array, privateKey: KeyObject): Promise<{ signature: Uint8Array; keyId: string }> {
  if (!(manifest instanceof Uint8Array)) throw new TypeError(`"manifest" expected Uint8Array, got ${typeof manifest}`);
  if (privateKey.type !== "private" || !isP384(privateKey)) throw new ReleaseError("ERR_SIGNING_KEY", "signing needs an EC P-384 private key");
  const spki = spkiOf(privateKey);
  const kid = new Uint8Array(createHash("sha256").update(spki).digest());
  // Labels in RFC 8949 §4.2.1 order: 1, 3, 4, then the negative -65537.
  const protectedBytes = encodeCbor(
    new Map<number, unknown>([
      [MANIFEST_SIG_HEADER.alg, COSE_ALG_ES384],
      [MANIFEST_SIG_HEADER.contentType, MANIFEST_CONTENT_TYPE],
      [MANIFEST_SIG_HEADER.kid, kid],
      [MANIFEST_SIG_HEADER.spki, spki],
    ]),
  );
  const signature = new Uint8Array(sign("sha384", sigStructure(protectedBytes, manifest), { key: privateKey, dsaEncoding: "ieee-p1363" }));
  const envelope = encodeCbor([protectedBytes, new Map(), null, signature]);
  const tagged = new Uint8Array(1 + envelope.length);
  tagged[0] = 0xc0 | COSE_SIGN1_TAG; // tag 18 in one byte (major type 6, value < 24)
  tagged.set(envelope, 1);
  const verified = await verifyManifestSignature(manifest, tagged, { spkiSha256: kid });
  return { signature: tagged, keyId: verified.keyId };
}
