import { Readable } from "node:stream";
import type { ReadableStream as NodeWebStream } from "node:stream/web";
import type { UpstreamPeer } from "../egress-peer.js";

/**
 * What an upstream call hands back, said explicitly: status, headers, the
 * body as a Node stream, and the TLS peer the egress path verified on the
 * connection it came on. The egress path (enclave/egress.ts) builds it from
 * undici's `request`, whose body already is a Node Readable: wrapping that
 * in a WHATWG stream and reading it through a reader cost about 25 µs per
 * small response on the benchmark machine, against 4 µs for the Node stream
 * itself, a real share of the gateway's per-request budget.
 */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Null when the status carries no body (1xx, 204, 304). Whoever reads it destroys it when done. */
  readonly body: Readable | null;
  /** Absent off the egress path (a WHATWG fetch, the built-in model). */
  readonly peer?: UpstreamPeer;
}

export interface UpstreamRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/**
 * How adapters reach upstream (ProviderCallContext.fetch). The egress path
 * answers with an UpstreamResponse; any WHATWG fetch (tests, tools) fits
 * too, its Response taken as one by `asUpstreamResponse`.
 */
export type UpstreamFetch = (url: string, init?: UpstreamRequest) => Promise<UpstreamResponse | Response>;

export function asUpstreamResponse(response: UpstreamResponse | Response): UpstreamResponse {
  if (!isWebResponse(response)) return response;
  const body = response.body;
  return { status: response.status, headers: response.headers, body: body ? Readable.fromWeb(body as NodeWebStream<Uint8Array>) : null };
}

/** A WHATWG Response (from any realm or undici copy): it has the body readers an UpstreamResponse has not. */
function isWebResponse(response: UpstreamResponse | Response): response is Response {
  return typeof (response as Partial<Response>).arrayBuffer === "function";
}
