import { EventStreamCodec, type Message } from "@smithy/eventstream-codec";
import type { Readable } from "node:stream";
import { UpstreamError } from "../types.js";

/**
 * Reads an `application/vnd.amazon.eventstream` body and yields each
 * message as soon as its last byte is in. The framing (AWS "Event stream
 * encoding"): a 12-byte prelude (total length, headers length, prelude
 * CRC32), headers, payload, message CRC32, all big-endian. The codec checks
 * both CRCs and parses the headers; this file only cuts the byte stream at
 * message boundaries, bounded: a message over `maxMessageBytes` (Bedrock's
 * are a few KiB) ends the stream as malformed instead of growing a buffer.
 */
export const MAX_EVENTSTREAM_MESSAGE_BYTES = 1024 * 1024;
const PRELUDE = 12;
const MIN_MESSAGE = 16;

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  (text) => new Uint8Array(Buffer.from(text, "utf8")),
);

export async function* readEventStream(body: Readable | null, provider: string, maxMessageBytes = MAX_EVENTSTREAM_MESSAGE_BYTES): AsyncGenerator<Message> {
  if (!body) throw new UpstreamError("malformed", `${provider}: stream has no body`);
  let buffer: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      for (;;) {
        if (buffer.length < PRELUDE) break;
        const total = buffer.readUInt32BE(0);
        if (total < MIN_MESSAGE || total > maxMessageBytes)
          throw new UpstreamError("malformed", `${provider}: event stream message of ${total} bytes is outside [${MIN_MESSAGE}, ${maxMessageBytes}]`);
        if (buffer.length < total) break;
        const frame = buffer.subarray(0, total);
        buffer = buffer.subarray(total);
        let message: Message;
        try {
          message = codec.decode(frame);
        } catch {
          throw new UpstreamError("malformed", `${provider}: event stream message failed its checksum or header parse`);
        }
        yield message;
      }
    }
  } finally {
    body.destroy();
  }
  if (buffer.length > 0) throw new UpstreamError("malformed", `${provider}: event stream ended inside a message`);
}

/** A header's value as a string, or undefined. */
export function headerString(message: Message, name: string): string | undefined {
  const h = message.headers[name];
  return h !== undefined && h.type === "string" ? h.value : undefined;
}
