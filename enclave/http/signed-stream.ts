import { createHash } from "node:crypto";
import { receiptSseBlock } from "../../attestation/receipt.js";
import type { GatewayError } from "../errors.js";
import type { GatewayMetrics } from "../observability/metrics.js";
import type { ChatCompletionChunk } from "../providers/types.js";
import { toGatewayError, type OpenedStream } from "../upstream.js";
import type { Exchange } from "./exchange.js";
import type { Responder } from "./responder.js";

/**
 * A streamed answer. Its receipt is a final SSE comment block
 * `: egw-receipt <base64url>` after the stream's own end, which every SSE
 * parser discards; it covers exactly the bytes sent before it. The stream
 * holds the request's concurrency slot and gives it back when it ends,
 * fails or the client goes away.
 */

/** How a surface writes a chat stream: each chunk, the normal end, an in-stream error. */
export interface StreamEncoder<T = ChatCompletionChunk> {
  chunk(chunk: T): string;
  end(): string;
  error(err: GatewayError): string;
}

export interface SignedStreamDeps {
  responder: Responder;
  metrics: GatewayMetrics;
  now: () => Date;
}

export function signedStream<T>(deps: SignedStreamDeps, ex: Exchange, opened: OpenedStream<T>, release: () => void, encoder: StreamEncoder<T>): Response {
  const { responder, metrics, now } = deps;
  const hash = createHash("sha256");
  const utf8 = new TextEncoder();
  let sent = 0;
  let firstSent = false;
  let finished = false;
  const finishStream = (controller: ReadableStreamDefaultController<Uint8Array>, code?: string) => {
    if (finished) return;
    finished = true;
    const receipt = responder.sign(ex, 200, new Uint8Array(hash.digest()));
    controller.enqueue(utf8.encode(receiptSseBlock(receipt)));
    controller.close();
    responder.record(ex, 200, sent, code);
    release();
  };
  const emit = (controller: ReadableStreamDefaultController<Uint8Array>, text: string) => {
    if (text === "") return;
    const bytes = utf8.encode(text);
    hash.update(bytes);
    sent += bytes.byteLength;
    controller.enqueue(bytes);
  };
  const body = new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        try {
          if (!firstSent) {
            firstSent = true;
            metrics.firstByte.observe({ surface: ex.surface }, (now().getTime() - ex.started) / 1000);
            emit(controller, encoder.chunk(opened.first));
            return;
          }
          // Pull until something is written: a surface may map a chunk to nothing.
          for (;;) {
            const next = await opened.rest.next();
            if (next.done) {
              emit(controller, encoder.end());
              finishStream(controller);
              return;
            }
            const text = encoder.chunk(next.value);
            if (text !== "") {
              emit(controller, text);
              return;
            }
          }
        } catch (err) {
          // Bytes already reached the client: no retry. Tell the client in
          // the surface's in-stream error form, sign what was sent, and stop.
          const e = toGatewayError(err);
          emit(controller, encoder.error(e));
          finishStream(controller, e.code);
        }
      },
      cancel: () => {
        // The client went away: abort the upstream call now.
        opened.close();
        void opened.rest.return(undefined).catch(() => {});
        if (!finished) {
          finished = true;
          responder.record(ex, 499, sent, "client_closed");
          release();
        }
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-request-id": ex.id,
      "x-accel-buffering": "no",
    },
  });
}
