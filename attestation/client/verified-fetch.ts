import type { TLSSocket } from "node:tls";
import { Client } from "undici";
import { requestToken } from "../attest-proof.js";
import { ChainCache } from "../chain.js";
import { RECEIPT_HEADER, sha256 } from "../receipt.js";
import { openAttestedConnection, parseGatewayOrigin } from "./connection.js";
import { CLIENT_ERROR_HEADER, clientErrorResponse } from "./error-response.js";
import { ClientError, asClientError } from "./errors.js";
import { checkNotExpired } from "../manifest/rollback.js";
import type { AttestedPeer } from "./peer.js";
import { resolvePolicy, type ClientPolicy, type ResolvedPolicy } from "./policy.js";
import { checkBufferedResponse, checkStreamedResponse, type SentRequest, type VerifiedReceipt } from "./response-check.js";

/**
 * A `fetch` that talks only to an attested gateway and only returns answers
 * whose receipts verify. Plugs into `new OpenAI({ baseURL, fetch })` and
 * `new Anthropic({ baseURL, fetch })`.
 *
 * Same-connection design. Each connection is an undici `Client` (one socket,
 * pipelining 1) whose `connect` hook is openAttestedConnection: TLS, then
 * `GET /v1/attestation?nonce=…` on that raw socket, then every check of the
 * policy and the channel binding, and only then is the socket handed to
 * undici. So every connection undici ever writes a request to was attested
 * first, including reconnects after the gateway closed an idle one, and a
 * failed attestation fails the queued request before its body is written.
 * A connection carries one request at a time (a small pool hands idle
 * connections out), so the attestation to check a response against is
 * always that of the connection it came over. A connection whose document
 * is older than the policy's maximum age is closed before reuse, and the
 * next request opens and attests a new one; an aged attestation is never
 * reused, and a failed re-attestation fails the request.
 *
 * Manifest expiry. A policy with `expires` (from the manifest) is refused
 * at creation once expired, and after that every request is checked at
 * now() before a byte is read or a connection chosen: from the expiry on,
 * each request fails with ERR_MANIFEST_EXPIRED, even over a connection
 * attested earlier, and no new connection is attested (connection.ts,
 * peer.ts). A request already under way (a stream) runs to its end. To go
 * on, the caller loads the current manifest and creates a new fetch.
 *
 * Receipts. The request body is serialized here (via the WHATWG Request) so
 * the exact bytes sent are known. Non-streamed responses are read whole,
 * checked against the x-egw-receipt header, and returned as a new Response
 * with the same status, headers and body. Streams (text/event-stream) pass
 * through unbuffered minus the final receipt block, and error at their end
 * if the receipt is missing or wrong. Responses outside the gateway's /v1
 * API carry no receipt and are therefore refused; `healthz()` is the one
 * exception, for `GET /healthz` (the gateway signs no receipt there).
 *
 * Failures. `exchange()` throws a ClientError. The fetch itself, by default
 * (`verificationErrors: "response"`), turns a ClientError into a Response it
 * makes up (error-response.ts: status 406, `x-should-retry: false`,
 * `x-egw-client-error: <code>`, the surface's error body "CODE: reason", no
 * receipt), so SDKs show the code and do not retry a refusal; a transient
 * one (action "retry") is a 502 the SDK may retry. With "throw" the fetch
 * throws the ClientError as it is. Anything else (an abort, a socket error
 * mid-answer) is thrown either way. A stream that fails verification after
 * its headers cannot change status: its surface's error event carries
 * "CODE: reason" (response-check.ts).
 */
export interface VerifiedFetchOptions {
  /** The gateway: https://host:port, with any path (only the origin is used; requests must stay on it). */
  baseURL: string | URL;
  policy: ClientPolicy;
  /** The clock for every check. Default: the system clock. */
  now?: () => Date;
  /** Called with every verified receipt (for audit storage). */
  onReceipt?: (receipt: VerifiedReceipt) => void;
  /** Called with every connection's verified attestation. */
  onAttestation?: (peer: AttestedPeer) => void;
  /** Concurrent connections (each attested). Default 8; further requests wait. */
  maxConnections?: number;
  /** How many verified receipts getReceipts() keeps (newest last). Default 100; 0 keeps none. */
  keepReceipts?: number;
  /** Keep streamed bodies in their VerifiedReceipt. Default false (streams are never held in memory). */
  retainStreamBodies?: boolean;
  /** Default 32 MiB. */
  maxRequestBytes?: number;
  /** Limit for non-streamed responses, which are read whole before they are checked. Default 64 MiB. */
  maxResponseBytes?: number;
  connectTimeoutMs?: number;
  attestationTimeoutMs?: number;
  /** undici headersTimeout / bodyTimeout. Defaults 300 s each. */
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /**
   * How the fetch reports a verification failure (a ClientError):
   * "response" (default) answers with a local error Response that SDKs show
   * as an API error with the code and do not retry (error-response.ts);
   * "throw" throws the ClientError (SDKs then report a connection error and
   * retry it). `exchange()` always throws.
   */
  verificationErrors?: "response" | "throw";
}

export interface VerifiedExchange {
  response: Response;
  /** The attestation of the connection that carried this exchange. */
  peer: AttestedPeer;
  /** Resolves once the receipt verified: at once for buffered responses, at the end for streams. */
  receipt: Promise<VerifiedReceipt>;
}

export type FetchInput = string | URL | Request;

export interface VerifiedFetch {
  (input: FetchInput, init?: RequestInit): Promise<Response>;
  /** Like the fetch itself, and also says which attestation and receipt cover the response. */
  exchange(input: FetchInput, init?: RequestInit): Promise<VerifiedExchange>;
  /**
   * `GET /healthz` over an attested connection. The gateway signs no receipt
   * for it (it is outside /v1), so the answer is vouched for by the attested
   * TLS channel alone; it is read whole, at most 64 KiB. Throws a ClientError.
   */
  healthz(init?: { signal?: AbortSignal }): Promise<{ response: Response; peer: AttestedPeer }>;
  /** The most recent verified receipts, oldest first. */
  getReceipts(): VerifiedReceipt[];
  /** Closes every connection; later calls fail with ERR_CLOSED. */
  close(): Promise<void>;
}

// Connection-level fields are the client's own business, never the caller's.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "content-length",
  "proxy-connection",
  "proxy-authorization",
  "expect",
  "accept-encoding",
]);
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
/** The one path answered without a receipt (healthz()), and how much of it is read. */
const HEALTHZ_PATH = "/healthz";
const MAX_HEALTHZ_BYTES = 64 * 1024;

function pathOf(input: FetchInput): string {
  try {
    return new URL(input instanceof Request ? input.url : input).pathname;
  } catch {
    return "/";
  }
}

class Slot {
  readonly client: Client;
  /** The attestation of the current socket; replaced only when a new socket is attested. */
  peer: AttestedPeer | undefined;
  busy = false;
  /** The token of the request being dispatched: a (re)connect proves it in the attestation request, never sends it. */
  token: string | undefined;

  constructor(origin: string, open: (token: string | undefined) => Promise<{ socket: TLSSocket; peer: AttestedPeer }>, options: { headersTimeout: number; bodyTimeout: number }) {
    this.client = new Client(origin, {
      pipelining: 1,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      connect: (_opts, callback) => {
        this.peer = undefined;
        open(this.token).then(
          ({ socket, peer }) => {
            this.peer = peer;
            callback(null, socket);
          },
          (err: Error) => callback(err, null),
        );
      },
    });
  }
}

/** The response headers, with the x-egw-receipt trailer in place of a missing header when `Trailer` announced it. */
function receiptFromTrailer(headers: Headers, trailers: Record<string, string | string[] | undefined> | undefined): Headers {
  if (headers.has(RECEIPT_HEADER)) return headers;
  const announced = (headers.get("trailer") ?? "").split(",").some((name) => name.trim().toLowerCase() === RECEIPT_HEADER);
  const value = trailers?.[RECEIPT_HEADER];
  if (!announced || typeof value !== "string") return headers;
  const merged = new Headers(headers);
  merged.set(RECEIPT_HEADER, value);
  return merged;
}

async function readLimited(source: AsyncIterable<Uint8Array>, max: number, onOver: () => ClientError): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > max) throw onOver();
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export function createVerifiedFetch(options: VerifiedFetchOptions): VerifiedFetch {
  const base = parseGatewayOrigin(options.baseURL);
  const origin = base.origin;
  const now = options.now ?? (() => new Date());
  if (typeof now !== "function") throw new ClientError("ERR_POLICY_INVALID", "now must be a function returning the current Date");
  const policy: ResolvedPolicy = resolvePolicy(options.policy, now());
  const maxConnections = options.maxConnections ?? 8;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new ClientError("ERR_POLICY_INVALID", "maxConnections must be a positive integer");
  const keep = options.keepReceipts ?? 100;
  const maxRequestBytes = options.maxRequestBytes ?? 32 * 1024 * 1024;
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024;
  const cache = new ChainCache();
  const slots: Slot[] = [];
  const waiters: (() => void)[] = [];
  const receipts: VerifiedReceipt[] = [];
  let closed = false;

  const open = (token: string | undefined) =>
    openAttestedConnection({
      origin,
      policy,
      now,
      cache,
      ...(token !== undefined && { proofToken: token }),
      ...(options.connectTimeoutMs !== undefined && { connectTimeoutMs: options.connectTimeoutMs }),
      ...(options.attestationTimeoutMs !== undefined && { attestationTimeoutMs: options.attestationTimeoutMs }),
    }).then((attested) => {
      try {
        options.onAttestation?.(attested.peer);
      } catch (err) {
        attested.socket.destroy();
        throw err;
      }
      return attested;
    });
  const slotOptions = { headersTimeout: options.headersTimeoutMs ?? 300_000, bodyTimeout: options.bodyTimeoutMs ?? 300_000 };

  const aged = (peer: AttestedPeer): boolean => now().getTime() - peer.result.timestamp.getTime() > policy.maxAgeMs;

  async function acquire(signal: AbortSignal): Promise<Slot> {
    for (;;) {
      if (closed) throw new ClientError("ERR_CLOSED", "the verified fetch was closed");
      signal.throwIfAborted();
      // Again here: the wait for a free connection may have outlasted the manifest.
      if (policy.expires !== undefined) checkNotExpired(policy.expires, now(), "the policy's manifest");
      const idle = slots.find((s) => !s.busy);
      if (idle) {
        if (idle.peer && aged(idle.peer)) {
          // Never reuse an aged attestation: drop the connection; its
          // replacement attests afresh when the request is dispatched.
          slots.splice(slots.indexOf(idle), 1);
          idle.client.destroy().catch(() => {});
          continue;
        }
        idle.busy = true;
        return idle;
      }
      if (slots.length < maxConnections) {
        const slot = new Slot(origin, open, slotOptions);
        slot.busy = true;
        slots.push(slot);
        return slot;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener("abort", wake);
          const at = waiters.indexOf(wake);
          if (at >= 0) waiters.splice(at, 1);
          resolve();
        };
        waiters.push(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }

  function release(slot: Slot): void {
    if (!slot.busy) return;
    slot.busy = false;
    waiters.shift()?.();
  }

  function record(receipt: VerifiedReceipt): void {
    if (keep > 0) {
      receipts.push(receipt);
      if (receipts.length > keep) receipts.splice(0, receipts.length - keep);
    }
    options.onReceipt?.(receipt);
  }

  const verificationErrors = options.verificationErrors ?? "response";
  if (verificationErrors !== "response" && verificationErrors !== "throw") throw new ClientError("ERR_POLICY_INVALID", 'verificationErrors must be "response" or "throw"');

  function exchange(input: FetchInput, init?: RequestInit): Promise<VerifiedExchange> {
    return send(input, init, false);
  }

  /** `unsigned` only for healthz(): a bounded, non-streamed GET /healthz whose answer has no receipt. */
  async function send(input: FetchInput, init: RequestInit | undefined, unsigned: boolean): Promise<VerifiedExchange> {
    if (closed) throw new ClientError("ERR_CLOSED", "the verified fetch was closed");
    if (policy.expires !== undefined) checkNotExpired(policy.expires, now(), "the policy's manifest");
    // The WHATWG Request serializes every body kind (string, bytes, Blob,
    // FormData, URLSearchParams, streams) and sets its content-type; the
    // bytes read back here are exactly the bytes written to the gateway.
    const request = new Request(input, { ...init, ...(init?.body != null && { duplex: "half" }) } as RequestInit);
    const url = new URL(request.url);
    if (url.origin !== origin) throw new ClientError("ERR_ORIGIN", `${url.origin} is not the attested gateway ${origin}`);
    const body = request.body
      ? await readLimited(
          request.body as unknown as AsyncIterable<Uint8Array>,
          maxRequestBytes,
          () => new ClientError("ERR_REQUEST_TOO_LARGE", `request body over ${maxRequestBytes} bytes`),
        )
      : new Uint8Array();
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    });
    // Receipts hash the bytes as sent; a content coding would be undone by
    // nobody here, so ask for none.
    headers["accept-encoding"] = "identity";
    const sent: SentRequest = { method: request.method, url: url.href, body };
    const requestSha256 = sha256(body);

    const slot = await acquire(request.signal);
    slot.token = requestToken(headers);
    let settled = false;
    const done = () => {
      if (!settled) {
        settled = true;
        release(slot);
      }
    };
    try {
      const res = await slot.client.request({
        path: `${url.pathname}${url.search}`,
        method: request.method as "GET",
        headers,
        body: body.length > 0 || !["GET", "HEAD"].includes(request.method) ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : null,
        signal: request.signal,
      });
      // One request per connection at a time: this is the attestation of
      // the socket the response came over.
      const peer = slot.peer;
      if (!peer) {
        res.body.destroy();
        throw new ClientError("ERR_CONNECT", "response on a connection without attestation");
      }
      const responseHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        // Only an answer this client made up may carry it (error-response.ts).
        if (value === undefined || name === CLIENT_ERROR_HEADER) continue;
        for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(name, v);
      }
      const status = res.statusCode;
      const init = { status, statusText: res.statusText ?? "", headers: responseHeaders };
      const streamed = /^text\/event-stream\s*(;|$)/i.test(responseHeaders.get("content-type") ?? "");

      if (unsigned) {
        const bytes = await readLimited(res.body, MAX_HEALTHZ_BYTES, () => {
          res.body.destroy();
          return new ClientError("ERR_RESPONSE_TOO_LARGE", `${HEALTHZ_PATH} answer over ${MAX_HEALTHZ_BYTES} bytes`);
        });
        done();
        const response = new Response(NULL_BODY_STATUS.has(status) ? null : bytes, init);
        Object.defineProperty(response, "url", { value: url.href });
        const none = Promise.reject(new ClientError("ERR_RECEIPT_MISSING", `the gateway signs no receipt for ${HEALTHZ_PATH}`));
        none.catch(() => {});
        return { response, peer, receipt: none };
      }

      if (!streamed) {
        const bytes = await readLimited(res.body, maxResponseBytes, () => {
          res.body.destroy();
          return new ClientError("ERR_RESPONSE_TOO_LARGE", `response body over ${maxResponseBytes} bytes`);
        });
        done();
        // A binary stream (speech audio) carries its receipt in an HTTP
        // trailer of the same name, announced in `Trailer` (docs/PROTOCOL.md
        // "Audio"); undici fills res.trailers once the body has ended.
        const receiptHeaders = receiptFromTrailer(responseHeaders, res.trailers);
        const verified = checkBufferedResponse({ peer, request: sent, status, headers: receiptHeaders, body: bytes, requestSha256 });
        record(verified);
        const response = new Response(NULL_BODY_STATUS.has(status) ? null : bytes, init);
        Object.defineProperty(response, "url", { value: url.href });
        return { response, peer, receipt: Promise.resolve(verified) };
      }

      const checked = checkStreamedResponse({
        peer,
        request: sent,
        status,
        source: res.body,
        requestSha256,
        retainBody: options.retainStreamBodies ?? false,
        onSettled: (err) => {
          if (err) res.body.destroy();
          done();
        },
      });
      checked.receipt.then(record, () => {});
      const response = new Response(checked.body, init);
      Object.defineProperty(response, "url", { value: url.href });
      return { response, peer, receipt: checked.receipt };
    } catch (err) {
      done();
      throw asClientError(err);
    }
  }

  const verifiedFetch = (async (input: FetchInput, init?: RequestInit) => {
    try {
      return (await exchange(input, init)).response;
    } catch (err) {
      if (verificationErrors === "throw" || !(err instanceof ClientError)) throw err;
      return clientErrorResponse(err, pathOf(input));
    }
  }) as VerifiedFetch;
  verifiedFetch.exchange = exchange;
  verifiedFetch.healthz = async (init) => {
    const { response, peer } = await send(`${origin}${HEALTHZ_PATH}`, { method: "GET", ...(init?.signal && { signal: init.signal }) }, true);
    return { response, peer };
  };
  verifiedFetch.getReceipts = () => [...receipts];
  verifiedFetch.close = async () => {
    closed = true;
    for (const resolve of waiters.splice(0)) resolve();
    await Promise.all(slots.splice(0).map((s) => s.client.destroy().catch(() => {})));
  };
  return verifiedFetch;
}
