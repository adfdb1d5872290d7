import { createHash } from "node:crypto";
import { RECEIPT_HEADER, receiptPath, sha256, type ReceiptClaims } from "../receipt.js";
import { clientErrorMessage } from "./error-response.js";
import { ClientError, asClientError } from "./errors.js";
import type { AttestedPeer } from "./peer.js";
import { decodeReceiptText, verifyReceiptDigests } from "./receipt-check.js";
import { StreamReceiptSplitter } from "./stream-splitter.js";
import { StreamTooLarge, streamSurfaceFor, TerminalEventHolder } from "./stream-terminal.js";
import { checkReceiptUpstream } from "./trust-check.js";

/**
 * The receipt-checking stage: takes a response as it came off an attested
 * connection and lets it through only with a receipt that the attested key
 * signed over the exact request bytes sent and response bytes received, for
 * the method and path it was sent to. A receipt with body_read false (the
 * gateway refused before reading the body: 401, 404, 413, 429 …) has no
 * request hash; it verifies like any other, and the caller gets the
 * gateway's own status and error body, not a tamper alarm. A receipt
 * naming an upstream origin outside the attested trust policy's providers,
 * or outside the allowed ones, is ERR_RECEIPT_UPSTREAM_NOT_ALLOWED.
 * Separate from the transport so it can be tested with altered bytes, and
 * used by anything that already holds an AttestedPeer.
 */
export interface SentRequest {
  method: string;
  url: string;
  /** The exact body bytes written to the connection (empty for none). */
  body: Uint8Array;
}

/** A response whose receipt verified: what to store for audit. */
export interface VerifiedReceipt {
  claims: ReceiptClaims;
  /** The receipt, raw COSE_Sign1 bytes as received. */
  receipt: Uint8Array;
  request: SentRequest;
  response: {
    status: number;
    streamed: boolean;
    /** SHA-256 of the body bytes the receipt covers. */
    sha256: Uint8Array;
    /** Those bytes: always for buffered responses, for streams only when retained. */
    body: Uint8Array | null;
  };
  /** The attestation of the connection the response came over (raw document in `peer.document`). */
  peer: AttestedPeer;
}

function checkClaims(claims: ReceiptClaims, status: number, request: SentRequest, peer: AttestedPeer): void {
  // `stream` in a receipt says the client asked for a stream; an error before
  // the stream opened is a plain JSON answer, so only the status is compared.
  if (claims.status !== status) {
    throw new ClientError("ERR_RECEIPT_CLAIMS_MISMATCH", `receipt is for status ${claims.status}, the response has status ${status}`);
  }
  // Without these a receipt for one endpoint could stand in for another's
  // answer whenever neither read a body (two GETs, two refusals).
  if (claims.method !== request.method.toUpperCase()) {
    throw new ClientError("ERR_RECEIPT_CLAIMS_MISMATCH", `receipt is for method ${claims.method}, the request was ${request.method.toUpperCase()}`);
  }
  const path = receiptPath(new URL(request.url).pathname);
  if (claims.path !== path) throw new ClientError("ERR_RECEIPT_CLAIMS_MISMATCH", "receipt is for another path than the one the request was sent to");
  // Where the answer came from, as the enclave saw it: one of the attested
  // policy's providers, and one the relying party allows.
  checkReceiptUpstream(claims, peer.trust);
}

/** Non-streamed: the receipt is the x-egw-receipt header over the whole body. Throws a ClientError. */
export function checkBufferedResponse(args: {
  peer: AttestedPeer;
  request: SentRequest;
  status: number;
  headers: Headers;
  body: Uint8Array;
  requestSha256?: Uint8Array;
}): VerifiedReceipt {
  try {
    const text = args.headers.get(RECEIPT_HEADER);
    if (text === null) throw new ClientError("ERR_RECEIPT_MISSING", `the response (status ${args.status}) carries no ${RECEIPT_HEADER} header`);
    const receipt = decodeReceiptText(text);
    const responseSha256 = sha256(args.body);
    const claims = verifyReceiptDigests(receipt, {
      publicKey: args.peer.receiptKey,
      requestSha256: args.requestSha256 ?? sha256(args.request.body),
      responseSha256,
    });
    checkClaims(claims, args.status, args.request, args.peer);
    return { claims, receipt, request: args.request, response: { status: args.status, streamed: false, sha256: responseSha256, body: args.body }, peer: args.peer };
  } catch (err) {
    throw asClientError(err);
  }
}

/**
 * Streamed (text/event-stream): bytes pass through as they arrive, minus the
 * final receipt block, hashed on the way; each event goes on once its blank
 * line is in, except the surface's terminal event (stream-terminal.ts), which
 * is held until the receipt verifies. Verified: the held event follows and the
 * stream closes. Not verified (bad signature, hash mismatch, missing receipt,
 * truncated stream, a broken connection): an error event in the surface's
 * format takes its place, then the returned stream errors (and `receipt`
 * rejects), so an SDK that stops at the end marker still throws. Nothing is
 * read ahead of the consumer (highWaterMark 0).
 */
export function checkStreamedResponse(args: {
  peer: AttestedPeer;
  request: SentRequest;
  status: number;
  source: AsyncIterable<Uint8Array>;
  requestSha256?: Uint8Array;
  /** Keep a copy of the streamed bytes in the VerifiedReceipt (for audit storage). Default false. */
  retainBody?: boolean;
  /** Called once when the stream ends, fails or is cancelled. */
  onSettled?: (err?: unknown) => void;
}): { body: ReadableStream<Uint8Array>; receipt: Promise<VerifiedReceipt> } {
  const it = args.source[Symbol.asyncIterator]();
  const splitter = new StreamReceiptSplitter();
  const holder = new TerminalEventHolder(streamSurfaceFor(new URL(args.request.url).pathname));
  const hash = createHash("sha256");
  const retained: Buffer[] | null = args.retainBody ? [] : null;
  let settle: ((value: VerifiedReceipt | Error) => void) | undefined;
  const receipt = new Promise<VerifiedReceipt>((resolve, reject) => {
    settle = (value) => (value instanceof Error ? reject(value) : resolve(value));
  });
  receipt.catch(() => {}); // the stream reports the error; an unread promise must not crash the process
  let done = false;
  const finish = (value: VerifiedReceipt | Error) => {
    if (done) return;
    done = true;
    settle!(value);
    args.onSettled?.(value instanceof Error ? value : undefined);
  };
  /** Set once the error event went out: the next read errors with it. */
  let failed: Error | undefined;

  const verifyAtEnd = (): VerifiedReceipt => {
    const bytes = splitter.end();
    if (bytes === null) throw new ClientError("ERR_RECEIPT_MISSING", "the stream ended without a well-formed receipt block");
    const responseSha256 = new Uint8Array(hash.digest());
    const claims = verifyReceiptDigests(bytes, {
      publicKey: args.peer.receiptKey,
      requestSha256: args.requestSha256 ?? sha256(args.request.body),
      responseSha256,
    });
    checkClaims(claims, args.status, args.request, args.peer);
    return {
      claims,
      receipt: bytes,
      request: args.request,
      response: { status: args.status, streamed: true, sha256: responseSha256, body: retained ? new Uint8Array(Buffer.concat(retained)) : null },
      peer: args.peer,
    };
  };

  const body = new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        if (failed) {
          controller.error(failed);
          return;
        }
        try {
          for (;;) {
            const next = await it.next();
            if (next.done) {
              const verified = verifyAtEnd();
              const held = holder.release();
              finish(verified);
              if (held.length > 0) controller.enqueue(held);
              controller.close();
              return;
            }
            const out = splitter.push(next.value);
            if (out.length === 0) continue;
            hash.update(out);
            retained?.push(Buffer.from(out));
            const passed = holder.push(out);
            if (passed.length === 0) continue;
            controller.enqueue(new Uint8Array(passed.buffer, passed.byteOffset, passed.byteLength));
            return;
          }
        } catch (err) {
          const wrapped = (err instanceof StreamTooLarge ? new ClientError("ERR_RESPONSE_TOO_LARGE", err.message) : asClientError(err)) as Error;
          finish(wrapped);
          await it.return?.().catch(() => {});
          // The error event goes to the read waiting now; the next read errors.
          // (Erroring at once would drop the event from the stream's queue.)
          const code = wrapped instanceof ClientError ? wrapped.code : "ERR_CONNECT";
          // "CODE: reason" first, as in the local error answers (error-response.ts): SDKs show this message.
          const message =
            wrapped instanceof ClientError ? clientErrorMessage(code, `the stream failed verification: ${wrapped.message}`) : `${code}: the gateway connection failed mid-stream`;
          failed = wrapped;
          controller.enqueue(holder.errorEvent(code, message));
        }
      },
      cancel: async () => {
        finish(new ClientError("ERR_RECEIPT_MISSING", "the stream was cancelled before its receipt"));
        await it.return?.().catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
  return { body, receipt };
}
