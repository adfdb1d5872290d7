import type { Duplex } from "node:stream";
import { ProvisionError } from "./provision-errors.js";

/**
 * The provisioning channel's framing, both directions (docs/PROTOCOL.md,
 * "Boot provisioning"): a 4-byte big-endian unsigned length, then exactly
 * that many bytes of UTF-8 JSON. One frame each way per connection (bundle
 * from the host, status from the enclave), written and read by this one
 * file on both sides. A length prefix lets the reader refuse an oversized
 * frame from its first four bytes, before buffering anything, and makes
 * "the whole frame arrived" unambiguous without relying on a half-close
 * that vsock peers may not send.
 */
export const FRAME_HEADER_BYTES = 4;

export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length === 0 || body.length > 0xffff_ffff) throw new RangeError(`frame body expected 1..2^32-1 bytes, got ${body.length}`);
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

export interface ReadFrameOptions {
  /** Largest accepted body; a larger declared length fails at once with ERR_PROVISION_TOO_LARGE. */
  maxBytes: number;
  /** From the call until the last byte of the frame; a slow peer fails with ERR_PROVISION_TIMEOUT. */
  timeoutMs: number;
  /** Stops the read with ERR_PROVISION_ABORTED (the host's SIGTERM while provisioning). */
  signal?: AbortSignal;
}

/**
 * Reads exactly one frame. Memory is bounded by `maxBytes` (the body buffer
 * is allocated only after the length is checked), time by `timeoutMs`.
 * Bytes after the frame in the same read are refused (one frame per
 * connection: anything else is a peer that does not speak this protocol).
 * On return the socket is paused, not destroyed: the caller still replies.
 */
export function readFrame(socket: Duplex, options: ReadFrameOptions): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    let headerFill = 0;
    let body: Uint8Array | undefined;
    let bodyFill = 0;
    const read = () => headerFill + bodyFill;
    const timer = setTimeout(
      () => done(new ProvisionError("ERR_PROVISION_TIMEOUT", `the frame did not arrive whole within ${options.timeoutMs} ms (${read()} bytes read)`)),
      options.timeoutMs,
    );

    function done(result: Uint8Array | ProvisionError): void {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.off("close", onEnd);
      options.signal?.removeEventListener("abort", onAbort);
      socket.pause();
      if (result instanceof ProvisionError) reject(result);
      else resolve(result);
    }
    function onData(chunk: Buffer): void {
      let offset = 0;
      if (body === undefined) {
        const take = Math.min(FRAME_HEADER_BYTES - headerFill, chunk.length);
        header.set(chunk.subarray(0, take), headerFill);
        headerFill += take;
        offset = take;
        if (headerFill < FRAME_HEADER_BYTES) return;
        const length = new DataView(header.buffer).getUint32(0, false);
        if (length === 0) return done(new ProvisionError("ERR_PROVISION_MALFORMED", "frame declares an empty body"));
        if (length > options.maxBytes) {
          return done(new ProvisionError("ERR_PROVISION_TOO_LARGE", `frame declares ${length} bytes, at most ${options.maxBytes} allowed`));
        }
        body = new Uint8Array(length);
      }
      const take = Math.min(body.length - bodyFill, chunk.length - offset);
      body.set(chunk.subarray(offset, offset + take), bodyFill);
      bodyFill += take;
      offset += take;
      if (bodyFill < body.length) return;
      if (offset < chunk.length) return done(new ProvisionError("ERR_PROVISION_MALFORMED", `${chunk.length - offset} bytes follow the frame`));
      done(body);
    }
    function onEnd(): void {
      done(new ProvisionError("ERR_PROVISION_CLOSED", `the peer closed after ${read()} bytes, before a whole frame`));
    }
    function onError(err: NodeJS.ErrnoException): void {
      done(new ProvisionError("ERR_PROVISION_CLOSED", `the connection failed (${err.code ?? "error"}) after ${read()} bytes`));
    }
    function onAbort(): void {
      done(new ProvisionError("ERR_PROVISION_ABORTED", "provisioning was stopped"));
    }
    if (options.signal?.aborted) return onAbort();
    // A peer that hung up before anyone listened would otherwise only show as a timeout.
    if (socket.destroyed || socket.readableEnded) return onEnd();
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    socket.resume();
  });
}
