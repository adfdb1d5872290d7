import { GatewayError } from "../errors.js";

/**
 * Reads a request body, counting bytes as they arrive (like hono's
 * bodyLimit) instead of trusting Content-Length, and stops reading at the
 * limit. Returns the exact bytes received: the receipt hashes these.
 */
export async function readBody(request: Request, maxBytes: number, incoming?: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`);
  }
  // On Node, read the IncomingMessage itself: a WHATWG stream around it
  // costs a measurable share of a small request.
  if (incoming) return readIterable(incoming, maxBytes);
  if (!request.body) return new Uint8Array(0);
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

async function readIterable(source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      // Stop reading (the for-await exit pauses the stream). The 413 goes
      // out with Connection: close, and Node closes the socket once it is
      // written, so the unread rest is never buffered.
      throw new GatewayError("request_too_large", `Request body is larger than ${maxBytes} bytes.`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
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
