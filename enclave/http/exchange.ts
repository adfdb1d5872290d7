import { createHash, randomBytes } from "node:crypto";
import { boundedUpstreamText, MAX_UPSTREAM_MODEL, receiptPath, type ReceiptClaims, type UpstreamProvenance } from "../../attestation/receipt.js";
import type { ProviderAdapter } from "../providers/types.js";
import type { Route } from "../router.js";
import type { Attempted } from "../upstream.js";

/**
 * One request's record: what its receipt, its metrics line and its log line
 * say. Built once, when the request arrives (middleware/exchange-record.ts),
 * and changed only through the methods below, each called at the one point
 * of the request path where that fact becomes known.
 */
export class Exchange {
  readonly id = `egw-${randomBytes(12).toString("hex")}`;
  /** The receipt's `path`: the request path, no query. */
  readonly path: string;
  #bodyRead = false;
  #requestSha256: Uint8Array | undefined;
  #requestBytes = 0;
  #model = "";
  #label = "(unrouted)";
  #provider = "";
  #upstream: UpstreamProvenance | undefined;
  #stream = false;

  constructor(
    /** The surface name in receipts, metrics and logs ("chat.completions", "messages", …). */
    readonly surface: string,
    readonly method: string,
    pathname: string,
    /** When the request arrived (ms): latency and time to first byte count from here. */
    readonly started: number,
  ) {
    this.path = receiptPath(pathname);
  }

  /** The body was read whole: only then does the receipt carry its hash (receipt v2 body_read). */
  bodyWasRead(bytes: Uint8Array): void {
    this.#bodyRead = true;
    this.#requestBytes = bytes.byteLength;
    this.#requestSha256 = new Uint8Array(createHash("sha256").update(bytes).digest());
  }

  /** The model the client asked for resolved to this route (before any upstream call). */
  routed(model: string, route: Route): void {
    this.#model = model;
    this.#label = route.label;
    this.#provider = route.adapter.info.name;
  }

  /** The answer will be a stream (said before the call, so a refused stream's receipt says so too). */
  streams(): void {
    this.#stream = true;
  }

  /**
   * The route that answered, the model it reported (for streams: in its
   * first chunk), and what egress saw of that exchange: the TLS key verified
   * on its connection and the provider's request id (upstream-provenance.ts).
   */
  answered(answered: Pick<Attempted<unknown>, "route" | "answeredBy">, reported: unknown): void {
    const { route, answeredBy } = answered;
    this.#provider = route.adapter.info.name;
    const model = boundedUpstreamText(reported, MAX_UPSTREAM_MODEL);
    this.#upstream = {
      origin: upstreamOriginOf(route.adapter),
      ...(answeredBy?.tlsSpkiSha256 && { tlsSpkiSha256: answeredBy.tlsSpkiSha256 }),
      ...(answeredBy?.requestId !== undefined && { requestId: answeredBy.requestId }),
      ...(model !== undefined && { model }),
    };
  }

  get bodyRead(): boolean {
    return this.#bodyRead;
  }
  get requestBytes(): number {
    return this.#requestBytes;
  }
  /** The exposed model name, the configured label (safe for metrics), the provider ("" before routing). */
  get model(): string {
    return this.#model;
  }
  get label(): string {
    return this.#label;
  }
  get provider(): string {
    return this.#provider;
  }
  get stream(): boolean {
    return this.#stream;
  }

  claims(status: number, responseSha256: Uint8Array, time: number): ReceiptClaims {
    return {
      v: 2,
      id: this.id,
      time,
      method: this.method,
      path: this.path,
      surface: this.surface,
      model: this.#model,
      provider: this.#provider,
      status,
      stream: this.#stream,
      bodyRead: this.#bodyRead,
      ...(this.#bodyRead && this.#requestSha256 && { requestSha256: this.#requestSha256 }),
      responseSha256,
      ...(this.#upstream && { upstream: this.#upstream }),
    };
  }
}

/** The receipt's upstream.origin: scheme://host[:port] of the provider's base URL, "local" for the built-in model. */
function upstreamOriginOf(adapter: ProviderAdapter): string {
  if (adapter.info.kind === "local") return "local";
  try {
    return new URL(adapter.info.baseUrl).origin;
  } catch {
    return "unknown";
  }
}
