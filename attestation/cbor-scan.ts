import { AttestationError } from "./errors.js";

/**
 * A strict well-formedness pass over CBOR bytes (RFC 8949 §3, Appendix C),
 * run before cbor-x builds values. cbor-x is a fast, lenient decoder: it
 * keeps the last of duplicate map keys, interprets many tags (Date, records,
 * shared references), and does not report trailing bytes. Attestation
 * documents must be judged on exactly what was sent, so this pass:
 *  - bounds depth, item count and every length before anything is allocated;
 *  - rejects reserved additional-info values, stray "break" bytes and
 *    indefinite-length strings whose chunks have the wrong type;
 *  - rejects duplicate map keys (RFC 8949 §5.6: a decoder MAY reject them;
 *    a verifier MUST, or two parsers could read two different documents);
 *  - rejects every tag, float, undefined and simple value, none of which a
 *    Nitro document or its COSE envelope contains (tag 18 is handled by the
 *    caller, at the top level only);
 *  - validates UTF-8 in text strings;
 *  - returns the offset just past the first item, so the caller can refuse
 *    trailing bytes.
 * Indefinite-length maps and arrays are accepted: real NSM output uses them
 * (the 2026 fixture's payload map is 0xbf … 0xff).
 */
export interface ScanLimits {
  maxDepth: number;
  maxItems: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxDepth: 8, maxItems: 4096 };

const BREAK = 0xff;
const utf8 = new TextDecoder("utf-8", { fatal: true });

interface Head {
  major: number;
  /** Argument value; -1 for indefinite length. Lengths above 2^53 are rejected. */
  value: number;
  /** Offset of the first byte after the head. */
  next: number;
}

function malformed(message: string): AttestationError {
  return new AttestationError("ERR_CBOR_MALFORMED", `malformed CBOR: ${message}`);
}

function readHead(bytes: Uint8Array, offset: number): Head {
  if (offset >= bytes.length) throw malformed(`unexpected end of input at offset ${offset}`);
  const initial = bytes[offset]!;
  const major = initial >> 5;
  const info = initial & 0x1f;
  let next = offset + 1;
  let value: number;
  if (info < 24) {
    value = info;
  } else if (info <= 27) {
    const size = 1 << (info - 24);
    if (next + size > bytes.length) throw malformed(`truncated argument at offset ${offset}`);
    value = 0;
    for (let i = 0; i < size; i++) {
      value = value * 256 + bytes[next + i]!;
    }
    // A uint64 argument above 2^53 can only be a length no buffer here has,
    // or an integer no Nitro field holds.
    if (!Number.isSafeInteger(value)) throw malformed(`argument too large at offset ${offset}`);
    next += size;
  } else if (info === 31) {
    if (major === 0 || major === 1 || major === 6) {
      throw malformed(`indefinite length not allowed for major type ${major} at offset ${offset}`);
    }
    value = -1;
  } else {
    throw malformed(`reserved additional information ${info} at offset ${offset}`);
  }
  return { major, value, next };
}

/** Identity of a map key for duplicate detection: semantic for ints and strings. */
function keyIdentity(bytes: Uint8Array, start: number, head: Head, end: number): string {
  if (head.major === 0) return `u${head.value}`;
  if (head.major === 1) return `n${head.value}`;
  if ((head.major === 2 || head.major === 3) && head.value >= 0) {
    return `${head.major}:${Buffer.from(bytes.subarray(head.next, end)).toString("latin1")}`;
  }
  return `raw:${Buffer.from(bytes.subarray(start, end)).toString("latin1")}`;
}

class Scanner {
  private items = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly limits: ScanLimits,
  ) {}

  /** Scans one data item starting at `offset`; returns the offset after it. */
  item(offset: number, depth: number): number {
    if (depth > this.limits.maxDepth) throw malformed(`nesting deeper than ${this.limits.maxDepth}`);
    if (++this.items > this.limits.maxItems) throw malformed(`more than ${this.limits.maxItems} items`);
    const head = readHead(this.bytes, offset);
    switch (head.major) {
      case 0:
      case 1:
        return head.next;
      case 2:
      case 3:
        return this.string(head, offset);
      case 4:
        return this.array(head, depth);
      case 5:
        return this.map(head, depth);
      case 6:
        throw malformed(`unexpected tag ${head.value} at offset ${offset}`);
      default:
        return this.simple(head, offset);
    }
  }

  private string(head: Head, offset: number): number {
    if (head.value >= 0) {
      const end = head.next + head.value;
      if (end > this.bytes.length) throw malformed(`string length ${head.value} exceeds input at offset ${offset}`);
      if (head.major === 3) this.checkUtf8(head.next, end, offset);
      return end;
    }
    // Indefinite-length string: definite chunks of the same major type, then break.
    let pos = head.next;
    for (;;) {
      if (pos >= this.bytes.length) throw malformed(`unterminated indefinite string at offset ${offset}`);
      if (this.bytes[pos] === BREAK) return pos + 1;
      if (++this.items > this.limits.maxItems) throw malformed(`more than ${this.limits.maxItems} items`);
      const chunk = readHead(this.bytes, pos);
      if (chunk.major !== head.major || chunk.value < 0) {
        throw malformed(`bad chunk in indefinite string at offset ${pos}`);
      }
      const end = chunk.next + chunk.value;
      if (end > this.bytes.length) throw malformed(`chunk length exceeds input at offset ${pos}`);
      if (head.major === 3) this.checkUtf8(chunk.next, end, pos);
      pos = end;
    }
  }

  private checkUtf8(start: number, end: number, offset: number): void {
    try {
      utf8.decode(this.bytes.subarray(start, end));
    } catch {
      throw malformed(`invalid UTF-8 in text string at offset ${offset}`);
    }
  }

  private array(head: Head, depth: number): number {
    let pos = head.next;
    if (head.value >= 0) {
      for (let i = 0; i < head.value; i++) pos = this.item(pos, depth + 1);
      return pos;
    }
    for (;;) {
      if (pos >= this.bytes.length) throw malformed("unterminated indefinite array");
      if (this.bytes[pos] === BREAK) return pos + 1;
      pos = this.item(pos, depth + 1);
    }
  }

  private map(head: Head, depth: number): number {
    const seen = new Set<string>();
    let pos = head.next;
    const entry = (): void => {
      const keyStart = pos;
      const keyHead = readHead(this.bytes, pos);
      pos = this.item(pos, depth + 1);
      const id = keyIdentity(this.bytes, keyStart, keyHead, pos);
      if (seen.has(id)) {
        throw new AttestationError("ERR_CBOR_DUPLICATE_KEY", `duplicate map key at offset ${keyStart}`);
      }
      seen.add(id);
      pos = this.item(pos, depth + 1);
    };
    if (head.value >= 0) {
      for (let i = 0; i < head.value; i++) entry();
      return pos;
    }
    for (;;) {
      if (pos >= this.bytes.length) throw malformed("unterminated indefinite map");
      if (this.bytes[pos] === BREAK) return pos + 1;
      entry();
    }
  }

  private simple(head: Head, offset: number): number {
    // Only false (20), true (21) and null (22). Head value -1 is a stray break.
    if (head.value === 20 || head.value === 21 || head.value === 22) {
      if (this.bytes[offset] !== 0xe0 + head.value) throw malformed(`non-preferred simple value at offset ${offset}`);
      return head.next;
    }
    if (head.value === -1) throw malformed(`unexpected break at offset ${offset}`);
    throw malformed(`unsupported simple or float value at offset ${offset}`);
  }
}

/**
 * Checks that `bytes` hold exactly one well-formed data item under the
 * profile above. Throws ERR_CBOR_MALFORMED, ERR_CBOR_DUPLICATE_KEY or
 * ERR_CBOR_TRAILING_BYTES.
 */
export function assertSingleItem(bytes: Uint8Array, what: string, limits: ScanLimits = DEFAULT_SCAN_LIMITS): void {
  if (bytes.length === 0) throw malformed(`${what} is empty`);
  const end = new Scanner(bytes, limits).item(0, 0);
  if (end !== bytes.length) {
    throw new AttestationError("ERR_CBOR_TRAILING_BYTES", `${what}: ${bytes.length - end} trailing byte(s) after the CBOR item`);
  }
}

/**
 * Reads an optional leading tag. Returns the tag number (or null) and the
 * offset of the tagged content. Only the outer COSE envelope may be tagged.
 */
export function readLeadingTag(bytes: Uint8Array): { tag: number | null; offset: number } {
  if (bytes.length === 0) throw malformed("input is empty");
  const head = readHead(bytes, 0);
  if (head.major !== 6) return { tag: null, offset: 0 };
  return { tag: head.value, offset: head.next };
}
