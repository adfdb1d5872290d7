import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import type { RequestView } from "./request-view.js";

/**
 * Reads a request body, counting bytes as they arrive (like hono's
 * bodyLimit) instead of trusting Content-Length, and stops reading at the
 * limit. Returns the exact bytes received: the receipt hashes these.
 */
export async function readBody(view: RequestView, maxBytes: number): Promise<Uint8Array> {
  const declared = view.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`);
  }
  // On Node, read the IncomingMessage itself: a WHATWG stream around it
  // costs a measurable share of a small request.
  if (view.incoming) return readIncoming(view.incoming, maxBytes);
  const request = view.request;
  if (!request?.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) throw new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`);
      chunks.push(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
}

/**
 * 'data'/'end' listeners rather than `for await`: an async iterator over a
 * Readable costs several promises and a buffer per chunk, and most bodies
 * are one chunk.
 */
function readIncoming(source: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = (err: unknown, value?: Uint8Array) => {
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onError);
      source.off("close", onClose);
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) {
        // Stop reading. The 413 goes out with Connection: close, and Node
        // closes the socket once it is written, so the unread rest is never
        // buffered.
        source.pause();
        done(new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`));
        return;
      }
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
