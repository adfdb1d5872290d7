import { EgwError } from "../../../attestation/egw-error.js";

/**
 * One error class for everything `readEif` and `measureEif` reject, with a
 * stable `code` so callers (and tests) `switch (err.code)` instead of parsing
 * messages. Every rejection is "stop: this is not an image we can measure".
 */
export type EifErrorCode =
  | "ERR_EIF_TOO_LARGE" // the file exceeds limits.maxFileBytes
  | "ERR_EIF_TRUNCATED" // the bytes end inside the header or a section
  | "ERR_EIF_MAGIC" // not ".eif"
  | "ERR_EIF_VERSION" // a version this reader does not know
  | "ERR_EIF_LAYOUT" // header and sections disagree: count, offsets, sizes, order, trailing bytes
  | "ERR_EIF_SECTION_TYPE" // a section type outside 1..5, or not allowed by the version
  | "ERR_EIF_SECTION_SIZE" // a section larger than its bound
  | "ERR_EIF_CRC" // the CRC32 in the header does not match the bytes
  | "ERR_EIF_SIGNATURE" // the signature section is not CBOR [{signing_certificate, signature}] with a PEM certificate
  | "ERR_EIF_METADATA"; // the metadata section is not a JSON object

export class EifError extends EgwError<EifErrorCode> {
  override readonly name = "EifError";

  constructor(code: EifErrorCode, message: string, options?: { cause?: unknown }) {
    // The bytes are not an image this reader can measure.
    super(code, message, "fix-input", options);
  }
}
