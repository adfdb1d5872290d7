import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import type { Reservation } from "../limits/byte-budget.js";
import type { RequestView } from "./request-view.js";

/**
 * Reads a request body, counting bytes as they arrive (like hono's
 * bodyLimit) instead of trusting Content-Length, and stops reading at the
 * limit. Returns the exact bytes received: the receipt hashes these.
 *
 * Three bounds, each answered without reading further (the caller sends the
 * error with Connection: close, so the unread rest is never buffered):
 *  - maxBytes for this body (413 request_too_large);
 *  - the shared in-flight budget (limits/byte-budget.ts): reserved up front
 *    to a declared Content-Length, then grown to the counted bytes, which are
 *    the authority (503 overloaded);
 *  - timeoutMs for the whole body from the first read, against slow uploads
 *    that would hold a slot and memory (408 request_timeout).
 */
export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
  /** Holds the body's bytes in the shared budget; the caller releases it when the request ends. */
  reservation?: Reservation;
}

const tooLarge = (maxBytes: number) => new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`);
const overBudget = () => new GatewayError("overloaded", "The gateway holds too many request bytes at once; retry shortly.", { retryAfter: 1, status: 503 });
const tooSlow = (timeoutMs: number) => new GatewayError("request_timeout", `Request body did not arrive within ${timeoutMs} ms.`);

export async function readBody(view: RequestView, limits: BodyLimits): Promise<Uint8Array> {
  const { maxBytes, reservation } = limits;
  const declared = view.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared)) {
    if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
    if (reservation && !reservation.ensure(Number(declared))) throw overBudget();
  }
  // On Node, read the IncomingMessage itself: a WHATWG stream around it
  // costs a measurable share of a small request.
  if (view.incoming) return readIncoming(view.incoming, limits);
  const request = view.request;
  if (!request?.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooSlow(limits.timeoutMs)), limits.timeoutMs);
  });
  expired.catch(() => {});
  try {
    for (;;) {
      const { value, done } = await Promise.race([reader.read(), expired]);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw tooLarge(maxBytes);
      if (reservation && !reservation.ensure(total)) throw overBudget();
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
}

/**
 * 'data'/'end' listeners rather than `for await`: an async iterator over a
 * Readable costs several promises and a buffer per chunk, and most bodies
 * are one chunk.
 */
function readIncoming(source: IncomingMessage, limits: BodyLimits): Promise<Uint8Array> {
  const { maxBytes, reservation } = limits;
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (err: unknown, value?: Uint8Array) => {
      clearTimeout(timer);
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onError);
      source.off("close", onClose);
      if (err) reject(err);
      else resolve(value!);
    };
    // Stop reading. The error goes out with Connection: close, and Node
    // closes the socket once it is written, so the unread rest is never
    // buffered.
    const stop = (err: GatewayError) => {
      source.pause();
      done(err);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) return stop(tooLarge(maxBytes));
      if (reservation && !reservation.ensure(total)) return stop(overBudget());
      chunks.push(chunk);
    };
    const onEnd = () => done(undefined, chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks)));
    const onError = (err: Error) => done(err);
    // The client went away before the body ended.
    const onClose = () => {
      if (!source.readableEnded) done(new Error("request body aborted"));
    };
    if (source.readableEnded) {
      resolve(new Uint8Array(0));
      return;
    }
    timer = setTimeout(() => stop(tooSlow(limits.timeoutMs)), limits.timeoutMs);
    source.on("data", onData);
    source.on("end", onEnd);
    source.on("error", onError);
    source.on("close", onClose);
  });
}

/** Parses a JSON object body; anything else is a 400 with a fixed message. */
export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch {
    throw new GatewayError("invalid_request", "Request body is not valid JSON.");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new GatewayError("invalid_request", "Request body must be a JSON object.");
  }
  return value as Record<string, unknown>;
}
