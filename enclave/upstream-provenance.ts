import { boundedUpstreamText, MAX_UPSTREAM_REQUEST_ID } from "../attestation/receipt.js";
import { asUpstreamResponse, type UpstreamFetch, type UpstreamResponse } from "./http/upstream-response.js";
import type { ProviderInfo } from "./providers/types.js";

/**
 * What a receipt says about the upstream exchange that answered, beyond its
 * origin and model: the TLS key verified on that connection and the
 * provider's own request id (receipt upstream.tls_spki_sha256, request_id).
 * Each is absent when there is nothing true to say: the built-in model, a
 * plain-http upstream, a provider that sent no id.
 */
export interface AnsweredBy {
  tlsSpkiSha256?: Uint8Array;
  requestId?: string;
}

/**
 * One attempt's fetch, remembering the response it handed to the adapter.
 * Every adapter call makes one upstream request, so the last response of a
 * successful attempt is the one its answer was read from. A new recorder
 * per attempt: a retried or failed attempt's response never describes the
 * one that answered.
 */
export class ExchangeRecorder {
  #last: UpstreamResponse | undefined;
  readonly fetch: UpstreamFetch;

  constructor(inner: UpstreamFetch) {
    this.fetch = async (url, init) => {
      const response = asUpstreamResponse(await inner(url, init));
      this.#last = response;
      return response;
    };
  }

  answeredBy(info: ProviderInfo): AnsweredBy | undefined {
    const response = this.#last;
    if (!response || info.kind === "local") return undefined;
    return answeredBy(response, info.requestIdHeader);
  }
}

/**
 * The peer the egress path recorded for this response (egress-peer.ts), and
 * the provider's request id header, bounded and stripped of control
 * characters: it is the provider's text, not ours.
 */
export function answeredBy(response: UpstreamResponse, requestIdHeader: string | undefined): AnsweredBy {
  const peer = response.peer;
  const requestId = requestIdHeader ? boundedUpstreamText(response.headers.get(requestIdHeader), MAX_UPSTREAM_REQUEST_ID) : undefined;
  return {
    ...(peer?.tlsSpkiSha256 && { tlsSpkiSha256: peer.tlsSpkiSha256 }),
    ...(requestId !== undefined && { requestId }),
  };
}
