import { RECEIPT_SSE_PREFIX } from "../receipt.js";

/**
 * Strips the receipt block (`: egw-receipt <base64url>\n\n`, the last thing
 * in a streamed body, docs/PROTOCOL.md §3) from a stream as it passes,
 * without buffering the stream: every byte is released as soon as it is
 * known not to belong to the final receipt block.
 *
 * Only a line that starts with the receipt prefix, or a partial line that
 * could still become one, is held; a stream that ends its events with
 * "\n\n" therefore holds nothing between events. A held candidate is
 * released as ordinary data as soon as it cannot be the final block (a
 * byte outside base64url, more than 8192 characters, or bytes after its
 * blank line), so the result is exactly that of `splitStreamReceipt` on the
 * whole body, however the bytes are chunked.
 */
const PREFIX = Buffer.from(RECEIPT_SSE_PREFIX, "latin1");
const MAX_B64 = 8192;
const NL = 0x0a;
const EMPTY = Buffer.alloc(0);

function isB64url(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
}

type Candidate = "partial" | "complete" | "invalid";

/** Classifies bytes that start with (a prefix of) PREFIX. */
function classify(c: Buffer): Candidate {
  if (c.length < PREFIX.length) return "partial";
  let i = PREFIX.length;
  while (i < c.length && isB64url(c[i]!)) i++;
  const count = i - PREFIX.length;
  if (count > MAX_B64) return "invalid";
  if (i === c.length) return "partial";
  if (c[i] !== NL || count === 0) return "invalid";
  if (i + 1 === c.length) return "partial";
  if (c[i + 1] !== NL) return "invalid";
  return i + 2 === c.length ? "complete" : "invalid";
}

function startsLikePrefix(buf: Buffer, at: number): boolean {
  const n = Math.min(PREFIX.length, buf.length - at);
  return n > 0 && buf.compare(PREFIX, 0, n, at, at + n) === 0;
}

export class StreamReceiptSplitter {
  private held: Buffer = EMPTY;
  /** Whether the byte before `held` ends a line (or nothing was released yet). */
  private atLineStart = true;

  /** Feeds the next chunk; returns the bytes that can be passed on now. */
  push(chunk: Uint8Array): Uint8Array {
    const buf = this.held.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.held, chunk]);
    const keep = this.holdFrom(buf);
    const out = buf.subarray(0, keep);
    // Copy the (small) held tail so the caller's chunk is not retained.
    this.held = keep === buf.length ? EMPTY : Buffer.from(buf.subarray(keep));
    if (keep > 0) this.atLineStart = buf[keep - 1] === NL;
    return out;
  }

  /**
   * After the last chunk: the receipt bytes when the stream ended with a
   * well-formed receipt block, else null (the block is missing or cut).
   */
  end(): Uint8Array | null {
    if (this.held.length === 0 || classify(this.held) !== "complete") return null;
    const b64 = this.held.subarray(PREFIX.length, this.held.length - 2).toString("latin1");
    return new Uint8Array(Buffer.from(b64, "base64url"));
  }

  /** Bytes held back so far (for limits and tests). */
  get heldBytes(): number {
    return this.held.length;
  }

  /** Index from which `buf` must be held: the first line start that may still be the final receipt block. */
  private holdFrom(buf: Buffer): number {
    let s = 0;
    let lineStart = this.atLineStart;
    for (;;) {
      if (!lineStart) {
        const nl = buf.indexOf(NL, s);
        if (nl < 0) return buf.length;
        s = nl + 1;
      }
      if (s >= buf.length) return buf.length;
      if (startsLikePrefix(buf, s) && classify(buf.subarray(s)) !== "invalid") return s;
      lineStart = false;
    }
  }
}
