import type net from "node:net";
import type { Duplex } from "node:stream";
import { readIntoBuffer } from "./transport.js";

/**
 * The one byte pump: copies `src` into `dst`, untouched, for the ingress
 * relay, the egress proxy's tunnels and the enclave's vsock bridges.
 *
 * Each read goes into one reused buffer and is written to `dst` at once;
 * when the kernel does not take it all (the write stays queued, still
 * pointing into the buffer) reading stops until it is flushed. So at most
 * one buffer per direction is in flight: the same backpressure as
 * stream.pipe, without a fresh allocation and a trip through the stream
 * machinery per read. A FIN from `src` becomes end() on `dst` after what is
 * queued (shutdown(SHUT_WR) on a socket); the other direction keeps
 * flowing. Where onread mode is unavailable (a stream that is not a libuv
 * socket, or one with bytes already buffered) it falls back to stream.pipe,
 * with the same hooks.
 */
export interface PumpOptions {
  /** Called once, at the first byte from `src` (the relay's handshake timer). */
  onFirstByte?: () => void;
  /** Called per read with its size (byte counters, idle timers); leave unset on hot paths that count from socket totals. */
  onBytes?: (n: number) => void;
  /**
   * The most one direction holds in flight. The first reads use 16 KiB; a
   * read that fills it makes the direction bulk and reads this much.
   */
  maxReadBytes?: number;
}

/** First read buffer per direction; small, so idle connections hold little. */
export const PUMP_READ_SMALL = 16 * 1024;
/** The bulk read size by default. */
export const PUMP_READ_LARGE = 512 * 1024;

export function pump(src: Duplex, dst: Duplex, options: PumpOptions = {}): void {
  const large = options.maxReadBytes ?? PUMP_READ_LARGE;
  const small = Math.min(PUMP_READ_SMALL, large);
  let buffer = Buffer.allocUnsafe(small);
  let first = options.onFirstByte;
  const onBytes = options.onBytes;
  let waiting = false;
  const written = () => {
    if (!waiting) return;
    waiting = false;
    if (!src.destroyed) src.resume();
  };
  const onRead = (n: number, data: Buffer): boolean => {
    if (first !== undefined) {
      first();
      first = undefined;
    }
    onBytes?.(n);
    if (dst.destroyed) return false;
    dst.write(data.subarray(0, n), written);
    if (n === data.length && data.length < large) buffer = Buffer.allocUnsafe(large);
    if (dst.writableLength > 0) {
      // The queued write still references `data`: no read into it until it is out.
      waiting = true;
      return false;
    }
    return true;
  };
  if (readIntoBuffer(src as net.Socket, () => buffer, onRead)) {
    src.on("end", () => dst.end());
    src.resume();
    return;
  }
  if (first !== undefined) src.once("data", first);
  if (onBytes !== undefined) src.on("data", (chunk: Buffer) => onBytes(chunk.length));
  src.pipe(dst);
}
