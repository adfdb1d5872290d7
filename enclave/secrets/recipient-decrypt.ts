import { constants, createDecipheriv, generateKeyPairSync, KeyObject, privateDecrypt } from "node:crypto";
import { AES_BLOCK_BYTES, ENCRYPTED_KEY_BYTES, parseCmsEnvelope } from "./cms-envelope.js";
import { CONTENT_DECRYPT_MESSAGE, CmsError, KEY_DECRYPT_MESSAGE } from "./cms-error.js";

/**
 * Opens a KMS `CiphertextForRecipient` with the enclave's ephemeral key: the
 * last step of `Decrypt` with `Recipient` (AWS KMS "How AWS Nitro Enclaves
 * uses AWS KMS"). KMS wraps a fresh AES-256 key with RSAES-OAEP-SHA-256 to
 * the attestation document's `public_key` and encrypts the secret with
 * AES-256-CBC under it.
 *
 * CBC here has no MAC: a tampered ciphertext that happens to keep valid
 * padding decrypts to altered bytes. That is KMS's format, not a choice; the
 * decryption runs once per boot on KMS's answer, so there is no online
 * padding oracle. Callers that need integrity of the secret itself should
 * check its shape.
 */

export const RECIPIENT_KEY_BITS = 2048;
const CEK_BYTES = 32;

export interface RecipientKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER: what goes into the attestation document's `public_key`. */
  spkiDer: Uint8Array;
}

/** A fresh RSA-2048 key pair (e = 65537), never leaving process memory. */
export function generateRecipientKey(): RecipientKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: RECIPIENT_KEY_BITS, publicExponent: 0x10001 });
  const spkiDer = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
  return { privateKey, publicKey, spkiDer };
}

export function decryptCiphertextForRecipient(cms: Uint8Array, privateKey: KeyObject): Uint8Array {
  checkPrivateKey(privateKey);
  const envelope = parseCmsEnvelope(cms);

  const cek = unwrapKey(envelope.encryptedKey, privateKey);
  let padded: Buffer | undefined;
  try {
    const decipher = createDecipheriv("aes-256-cbc", cek, envelope.iv).setAutoPadding(false);
    padded = Buffer.concat([decipher.update(envelope.encryptedContent), decipher.final()]);
  } finally {
    cek.fill(0);
  }
  try {
    const length = unpaddedLength(padded);
    if (length < 0) {
      throw new CmsError("ERR_CMS_CONTENT_DECRYPT", CONTENT_DECRYPT_MESSAGE);
    }
    return new Uint8Array(padded.subarray(0, length));
  } finally {
    padded.fill(0);
  }
}

function checkPrivateKey(key: KeyObject): void {
  if (!(key instanceof KeyObject) || key.type !== "private" || key.asymmetricKeyType !== "rsa") {
    throw new CmsError("ERR_CMS_KEY_INVALID", "CMS: expected an RSA private KeyObject");
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== RECIPIENT_KEY_BITS) {
    throw new CmsError("ERR_CMS_KEY_INVALID", `CMS: expected an RSA-${RECIPIENT_KEY_BITS} key, got ${bits ?? "unknown"} bits`);
  }
}

/**
 * RSAES-OAEP, SHA-256 for both the hash and MGF1, empty label: what the parser
 * accepted. Wrong key, tampered encryptedKey and a wrong-sized unwrapped key
 * all give the same error, so the step is no oracle.
 */
function unwrapKey(encryptedKey: Uint8Array, privateKey: KeyObject): Buffer {
  if (encryptedKey.length !== ENCRYPTED_KEY_BYTES) {
    throw new CmsError("ERR_CMS_KEY_DECRYPT", KEY_DECRYPT_MESSAGE);
  }
  let cek: Buffer;
  try {
    cek = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, encryptedKey);
  } catch {
    throw new CmsError("ERR_CMS_KEY_DECRYPT", KEY_DECRYPT_MESSAGE);
  }
  if (cek.length !== CEK_BYTES) {
    cek.fill(0);
    throw new CmsError("ERR_CMS_KEY_DECRYPT", KEY_DECRYPT_MESSAGE);
  }
  return cek;
}

/**
 * PKCS#7 padding (RFC 5652 §6.3): the last byte n is 1..16 and the last n
 * bytes all equal n. Every one of the last 16 bytes is looked at whatever n
 * is, without early exit. Returns the content length, or -1.
 */
function unpaddedLength(padded: Buffer): number {
  if (padded.length === 0 || padded.length % AES_BLOCK_BYTES !== 0) return -1;
  const n = padded[padded.length - 1]!;
  let bad = (n === 0 ? 1 : 0) | (n > AES_BLOCK_BYTES ? 1 : 0);
  for (let i = 1; i <= AES_BLOCK_BYTES; i++) {
    const b = padded[padded.length - i]!;
    const inPad = i <= n ? 1 : 0;
    bad |= inPad & (b !== n ? 1 : 0);
  }
  return bad === 0 ? padded.length - n : -1;
}
