import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { Readable } from "node:stream";
import { UpstreamError } from "../types.js";

/**
 * Reads an upstream Server-Sent Events body (WHATWG HTML §9.2) with
 * eventsource-parser and yields each event as soon as its terminating blank
 * line arrives: nothing is held back beyond the event being assembled.
 * Bounded: an event larger than `maxEventBytes` (a provider gone wrong, or
 * something that is not SSE at all) ends the stream with an UpstreamError.
 */
export interface SseEvent {
  event: string | undefined;
  data: string;
  id: string | undefined;
}

export const DEFAULT_MAX_SSE_EVENT_BYTES = 4 * 1024 * 1024;

export async function* readSse(body: ReadableStream<Uint8Array> | Readable | null, options: { maxEventBytes?: number } = {}): AsyncGenerator<SseEvent> {
  if (!body) throw new UpstreamError("malformed", "upstream stream has no body");
  const maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_SSE_EVENT_BYTES;
  const queue: SseEvent[] = [];
  let pendingBytes = 0;
  const parser = createParser({
    onEvent(message: EventSourceMessage) {
      queue.push({ event: message.event, data: message.data, id: message.id });
      pendingBytes = 0;
    },
  });
  const decoder = new TextDecoder("utf-8");
  const chunks = chunksOf(body);
  try {
    for (;;) {
      const { value, done } = await chunks.next();
      if (done) break;
      pendingBytes += value.byteLength;
      if (pendingBytes > maxEventBytes) {
        throw new UpstreamError("malformed", `upstream SSE event exceeds ${maxEventBytes} bytes`);
      }
      parser.feed(decoder.decode(value, { stream: true }));
      while (queue.length > 0) yield queue.shift()!;
    }
    parser.feed(decoder.decode());
    // A final event without its blank line is incomplete: SSE drops it (§9.2.6).
    while (queue.length > 0) yield queue.shift()!;
  } finally {
    // Runs on normal end, on error, and when the consumer stops early
    // (client disconnect): cancel the upstream body so the socket is freed.
    chunks.close();
  }
}

/** One pull interface over a WHATWG stream or a Node Readable (an upstream body: enclave/http/upstream-response.ts). */
function chunksOf(body: ReadableStream<Uint8Array> | Readable): { next(): Promise<IteratorResult<Uint8Array>>; close(): void } {
  if (body instanceof ReadableStream) {
    const reader = body.getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<Uint8Array>>,
      close: () => {
        reader.cancel().catch(() => {});
        reader.releaseLock();
      },
    };
  }
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return {
    next: () => iterator.next(),
    close: () => {
      body.destroy();
    },
  };
}

/** Parses an event's JSON data; a parse failure is a malformed upstream. */
export function parseEventJson(event: SseEvent, provider: string): unknown {
  try {
    return JSON.parse(event.data);
  } catch {
    // No `cause`: a SyntaxError's message quotes the data, which may echo the prompt.
    throw new UpstreamError("malformed", `${provider}: stream event is not JSON`);
  }
}
