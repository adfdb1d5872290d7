import { createHash } from "node:crypto";
import { RECEIPT_HEADER, sha256, type ReceiptClaims } from "../receipt.js";
import { ClientError, asClientError } from "./errors.js";
import type { AttestedPeer } from "./peer.js";
import { decodeReceiptText, verifyReceiptDigests } from "./receipt-check.js";
import { StreamReceiptSplitter } from "./stream-splitter.js";

/**
 * The receipt-checking stage: takes a response as it came off an attested
 * connection and lets it through only with a receipt that the attested key
 * signed over the exact request bytes sent and response bytes received.
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

function checkClaims(claims: ReceiptClaims, status: number): void {
  // `stream` in a receipt says the client asked for a stream; an error before
  // the stream opened is a plain JSON answer, so only the status is compared.
  if (claims.status !== status) {
    throw new ClientError("ERR_RECEIPT_CLAIMS_MISMATCH", `receipt is for status ${claims.status}, the response has status ${status}`);
  }
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
    checkClaims(claims, args.status);
    return { claims, receipt, request: args.request, response: { status: args.status, streamed: false, sha256: responseSha256, body: args.body }, peer: args.peer };
  } catch (err) {
    throw asClientError(err);
  }
}

/**
 * Streamed (text/event-stream): bytes pass through as they arrive, minus the
 * final receipt block, hashed on the way; at the end the receipt must
 * verify, or the returned stream errors (and `receipt` rejects) instead of
 * closing. Nothing is read ahead of the consumer (highWaterMark 0).
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

  const body = new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        try {
          for (;;) {
            const next = await it.next();
            if (next.done) {
              const bytes = splitter.end();
              if (bytes === null) throw new ClientError("ERR_RECEIPT_MISSING", "the stream ended without a well-formed receipt block");
              const responseSha256 = new Uint8Array(hash.digest());
              const claims = verifyReceiptDigests(bytes, {
                publicKey: args.peer.receiptKey,
                requestSha256: args.requestSha256 ?? sha256(args.request.body),
                responseSha256,
              });
              checkClaims(claims, args.status);
              const verified: VerifiedReceipt = {
                claims,
                receipt: bytes,
                request: args.request,
                response: { status: args.status, streamed: true, sha256: responseSha256, body: retained ? new Uint8Array(Buffer.concat(retained)) : null },
                peer: args.peer,
              };
              finish(verified);
              controller.close();
              return;
            }
            const out = splitter.push(next.value);
            if (out.length === 0) continue;
            hash.update(out);
            retained?.push(Buffer.from(out));
            controller.enqueue(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
            return;
          }
        } catch (err) {
          const wrapped = asClientError(err) as Error;
          finish(wrapped);
          controller.error(wrapped);
          await it.return?.().catch(() => {});
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
