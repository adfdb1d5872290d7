import { AttestationError } from "./errors.js";

/**
 * Minimal DER TLV slicing. Certificate structure is parsed with node-forge's
 * ASN.1 decoder (cert-parse.ts); this only finds the exact byte ranges that
 * signatures cover (TBSCertificate, SubjectPublicKeyInfo), because a
 * signature must be checked over the bytes received, never a re-encoding.
 */
export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

function bad(message: string): AttestationError {
  return new AttestationError("ERR_CERT_MALFORMED", `certificate DER: ${message}`);
}

export function readTlv(bytes: Uint8Array, offset: number, limit = bytes.length): Tlv {
  if (offset + 2 > limit) throw bad(`truncated at offset ${offset}`);
  const tag = bytes[offset]!;
  // Multi-byte tags never occur in X.509 structures we slice.
  if ((tag & 0x1f) === 0x1f) throw bad(`high-tag-number form at offset ${offset}`);
  let pos = offset + 1;
  const first = bytes[pos++]!;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    // 0x80 is BER indefinite length, forbidden in DER; certificates < 64 KiB here.
    if (count === 0 || count > 3) throw bad(`unsupported length form at offset ${offset}`);
    if (pos + count > limit) throw bad(`truncated length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | bytes[pos++]!;
    // DER requires the shortest length encoding (X.690 §10.1).
    if (length < 0x80 || (count > 1 && length < 1 << (8 * (count - 1)))) throw bad(`non-minimal length at offset ${offset}`);
  }
  const end = pos + length;
  if (end > limit) throw bad(`length ${length} overruns input at offset ${offset}`);
  return { tag, start: offset, contentStart: pos, end };
}

/** The top-level TLVs inside a constructed TLV. */
export function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const tlv = readTlv(bytes, pos, parent.end);
    out.push(tlv);
    pos = tlv.end;
    if (out.length > 64) throw bad("too many elements");
  }
  return out;
}
