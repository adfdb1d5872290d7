import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { RECEIPT_HEADER } from "../../attestation/receipt.js";
import { GatewayError } from "../errors.js";
import { toGatewayError, type OpenedStream } from "../upstream.js";
import type { Exchange } from "./exchange.js";
import type { SignedStreamDeps } from "./signed-stream.js";

/**
 * A binary answer streamed as it arrives (speech audio), whose receipt
 * cannot ride inside the body the way an SSE comment does (any byte added
 * would corrupt the audio for a stock client). So the receipt goes in an
 * HTTP trailer field of the same name, `x-egw-receipt`, announced by
 * `Trailer: x-egw-receipt` (RFC 9110 §6.5) and sent after the last chunk;
 * clients that do not read trailers get the audio unchanged. It covers
 * exactly the bytes sent. A stream that fails after its first byte is cut
 * (no terminating chunk, no trailer): every HTTP client sees an incomplete
 * body, and no receipt vouches for a truncated answer. docs/PROTOCOL.md
 * "Audio" says how the verifying client checks it.
 *
 * Trailers need the Node response itself (the server binding `outgoing`).
 * Without it (the app driven in-process by `app.request()`, in tests and
 * tools) there is no way to send one, so the audio is collected, bounded
 * by MAX_BUFFERED_BINARY_BYTES, and signed in the header like any answer.
 */
export const MAX_BUFFERED_BINARY_BYTES = 32 * 1024 * 1024;

export async function signedBinaryStream(
  deps: SignedStreamDeps,
  ex: Exchange,
  opened: OpenedStream<Uint8Array>,
  release: () => void,
  contentType: string,
  outgoing: ServerResponse | Http2ServerResponse | undefined,
): Promise<Response> {
  if (outgoing === undefined) return buffered(deps, ex, opened, release, contentType);
  const { responder, metrics, now } = deps;
  const hash = createHash("sha256");
  let sent = 0;
  let finished = false;
  const settle = (status: number, code?: string) => {
    if (finished) return;
    finished = true;
    responder.record(ex, status, sent, code);
    release();
  };
  const onClose = () => {
    if (finished) return;
    opened.close();
    void opened.rest.return(undefined).catch(() => {});
    settle(499, "client_closed");
  };
  outgoing.once("close", onClose);
  const write = (chunk: Uint8Array): Promise<void> => {
    hash.update(chunk);
    sent += chunk.byteLength;
    return new Promise<void>((resolve) => {
      if ((outgoing as ServerResponse).write(chunk)) return resolve();
      // Wait for the client to take it (or go away); neither listener outlives the wait.
      const done = () => {
        outgoing.off("drain", done);
        outgoing.off("close", done);
        resolve();
      };
      outgoing.once("drain", done);
      outgoing.once("close", done);
    });
  };
  (outgoing as ServerResponse).writeHead(200, {
    "content-type": contentType,
    "cache-control": "no-cache",
    "x-request-id": ex.id,
    trailer: RECEIPT_HEADER,
  });
  try {
    metrics.firstByte.observe({ surface: ex.surface }, (now().getTime() - ex.started) / 1000);
    await write(opened.first);
    for (;;) {
      if (finished || outgoing.destroyed) return RESPONSE_ALREADY_SENT;
      const next = await opened.rest.next();
      if (next.done) break;
      if (next.value.byteLength > 0) await write(next.value);
    }
    if (finished || outgoing.destroyed) return RESPONSE_ALREADY_SENT;
    const receipt = responder.sign(ex, 200, new Uint8Array(hash.digest()));
    outgoing.addTrailers({ [RECEIPT_HEADER]: Buffer.from(receipt).toString("base64url") });
    outgoing.end();
    settle(200);
  } catch (err) {
    settle(200, toGatewayError(err).code);
    outgoing.destroy();
  } finally {
    outgoing.off("close", onClose);
  }
  return RESPONSE_ALREADY_SENT;
}

async function buffered(deps: SignedStreamDeps, ex: Exchange, opened: OpenedStream<Uint8Array>, release: () => void, contentType: string): Promise<Response> {
  try {
    const chunks: Uint8Array[] = [opened.first];
    let total = opened.first.byteLength;
    for await (const chunk of opened.rest) {
      total += chunk.byteLength;
      if (total > MAX_BUFFERED_BINARY_BYTES) {
        opened.close();
        throw new GatewayError("upstream_error", `The audio is over ${MAX_BUFFERED_BINARY_BYTES} bytes, more than the in-process gateway holds.`);
      }
      chunks.push(chunk);
    }
    return deps.responder.finish(ex, 200, new Uint8Array(Buffer.concat(chunks)), { "content-type": contentType, "cache-control": "no-cache" });
  } finally {
    release();
  }
}
