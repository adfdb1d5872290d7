import { RECEIPT_PROFILE } from "../receipt.js";
import { ClientError } from "./errors.js";

// The digest-based check lives with the receipt format; re-exported for the client's callers.
export { verifyReceiptDigests } from "../receipt.js";

const MAX_RECEIPT_TEXT = Math.ceil((RECEIPT_PROFILE.maxBytes * 4) / 3) + 4;

/** The receipt bytes from an x-egw-receipt header value (base64url, bounded). */
export function decodeReceiptText(text: string): Uint8Array {
  if (text.length === 0 || text.length > MAX_RECEIPT_TEXT || !/^[A-Za-z0-9_-]+$/.test(text) || text.length % 4 === 1) {
    throw new ClientError("ERR_RECEIPT_MALFORMED", "receipt is not base64url of at most 4096 bytes");
  }
  return new Uint8Array(Buffer.from(text, "base64url"));
}
