import { timingSafeEqual, verify, type KeyObject } from "node:crypto";
import { sigStructure } from "../cose-sign1.js";
import { AttestationError, SIGNATURE_MESSAGE } from "../errors.js";
import { decodeReceipt, RECEIPT_PROFILE, type ReceiptClaims } from "../receipt.js";
import { ClientError } from "./errors.js";

/**
 * verifyReceipt (../receipt.ts) over digests instead of whole bodies, so a
 * stream can be hashed as it passes through and never kept. Same order,
 * same codes, same single signature message: the signature over the payload
 * bytes as received, then the request hash, then the response hash.
 */
export function verifyReceiptDigests(
  receipt: Uint8Array,
  options: { publicKey: KeyObject; requestSha256: Uint8Array; responseSha256: Uint8Array },
): ReceiptClaims {
  const decoded = decodeReceipt(receipt);
  const ok = verify("sha256", sigStructure(decoded.protectedBytes, decoded.payload), { key: options.publicKey, dsaEncoding: "ieee-p1363" }, decoded.signature);
  if (!ok) throw new AttestationError("ERR_SIGNATURE_INVALID", SIGNATURE_MESSAGE);
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
  if (!same(decoded.claims.requestSha256, options.requestSha256)) {
    throw new AttestationError("ERR_RECEIPT_REQUEST_MISMATCH", "receipt does not cover the request body that was sent");
  }
  if (!same(decoded.claims.responseSha256, options.responseSha256)) {
    throw new AttestationError("ERR_RECEIPT_RESPONSE_MISMATCH", "receipt does not cover the response body that was received");
  }
  return decoded.claims;
}

const MAX_RECEIPT_TEXT = Math.ceil((RECEIPT_PROFILE.maxBytes * 4) / 3) + 4;

/** The receipt bytes from an x-egw-receipt header value (base64url, bounded). */
export function decodeReceiptText(text: string): Uint8Array {
  if (text.length === 0 || text.length > MAX_RECEIPT_TEXT || !/^[A-Za-z0-9_-]+$/.test(text) || text.length % 4 === 1) {
    throw new ClientError("ERR_RECEIPT_MALFORMED", "receipt is not base64url of at most 4096 bytes");
  }
  return new Uint8Array(Buffer.from(text, "base64url"));
}
