import { EgwError, type EgwErrorAction } from "../../attestation/egw-error.js";

/**
 * Every failure while opening a KMS `CiphertextForRecipient` is a CmsError
 * with a stable `code`; callers switch on `code`, never on the message.
 *
 * Messages name the field that failed and the sizes or counts involved. They
 * never carry bytes of the input, the content-encryption key or the
 * plaintext: the plaintext is a provider key, and the input is
 * attacker-reachable (it crosses the host).
 */
export type CmsErrorCode =
  | "ERR_CMS_TOO_LARGE" // input, or encryptedContent chunk count, over the bound
  | "ERR_CMS_MALFORMED" // not BER, trailing bytes, wrong tag/version/shape, wrong field size
  | "ERR_CMS_CONTENT_TYPE" // ContentInfo is not envelopedData, or the content is not id-data
  | "ERR_CMS_RECIPIENT" // not exactly one KeyTransRecipientInfo v2 with rid = subjectKeyIdentifier
  | "ERR_CMS_ALGORITHM" // not RSAES-OAEP(SHA-256, MGF1-SHA-256) or not AES-256-CBC
  | "ERR_CMS_KEY_INVALID" // the caller's private key is not an RSA-2048 private key
  | "ERR_CMS_KEY_DECRYPT" // RSA-OAEP unwrap failed: wrong key, or tampered encryptedKey
  | "ERR_CMS_CONTENT_DECRYPT"; // AES-256-CBC padding check failed: tampered content

/** A failed decryption or a weaker algorithm is a refusal; the rest is input that is not a KMS answer. */
const ACTION: Record<CmsErrorCode, EgwErrorAction> = {
  ERR_CMS_TOO_LARGE: "fix-input",
  ERR_CMS_MALFORMED: "fix-input",
  ERR_CMS_CONTENT_TYPE: "fix-input",
  ERR_CMS_RECIPIENT: "fix-input",
  ERR_CMS_ALGORITHM: "reject",
  ERR_CMS_KEY_INVALID: "fix-input",
  ERR_CMS_KEY_DECRYPT: "reject",
  ERR_CMS_CONTENT_DECRYPT: "reject",
};

export class CmsError extends EgwError<CmsErrorCode> {
  override readonly name = "CmsError";

  constructor(code: CmsErrorCode, message: string) {
    // No `cause`: underlying errors (forge, OpenSSL) are not ours to vet for
    // secret material, so they are dropped rather than attached.
    super(code, message, ACTION[code]);
  }
}

/** Unwrap failures always carry this one message. */
export const KEY_DECRYPT_MESSAGE = "CMS: could not decrypt the content-encryption key";
/** Padding failures always carry this one message. */
export const CONTENT_DECRYPT_MESSAGE = "CMS: could not decrypt the content";

export function isCmsError(err: unknown): err is CmsError {
  return err instanceof CmsError;
}
