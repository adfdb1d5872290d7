import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { Client, Pool, type Dispatcher } from "undici";
import { EgwError } from "../attestation/egw-error.js";

/**
 * The upstream TLS key that answered one exchange: the SHA-256 of the
 * SubjectPublicKeyInfo DER of the leaf certificate the enclave verified on
 * the very connection that carried the response (the receipt's
 * upstream.tls_spki_sha256).
 *
 * Why it is that connection, not a guess by host name:
 * - An undici Client owns at most one socket at a time (HTTP/1.1 only:
 *   allowH2 is off in egress.ts), and writes a request only on that socket.
 *   Its current socket is the one its connector delivered last: it runs one
 *   connect at a time (undici lib/dispatcher/client.js `connect`, kConnecting).
 * - The Client calls the request handler's onConnect synchronously while
 *   writing that request on its current socket, just before the request head
 *   goes out (lib/dispatcher/client-h1.js `writeH1`).
 * - So each Client gets its own connector wrapper, which records the peer of
 *   every socket it delivers, and every request handler is wrapped to read
 *   that record in onConnect and hand it on as the request's `context`,
 *   which undici's `request()` returns with the response
 *   (ResponseData.context). The response is read from the same socket the
 *   request was written to (one request in flight per socket).
 * Nothing is cached by host: every new connection (a reconnect, another
 * server behind the same name, a rotated certificate) gets its own record,
 * and TLS renegotiation is refused, so a connection's peer cannot change
 * while it is open. Session resumption is off in egress.ts, so every
 * connection verified the certificate chain itself.
 */
export interface UpstreamPeer {
  /** Absent for a plain-http upstream (development, loopback). */
  tlsSpkiSha256?: Uint8Array;
}

/** Key of the peer record in an undici request's `context`. */
export const UPSTREAM_PEER = Symbol("egw.upstreamPeer");

/** The peer record of a `request()` result's context, if the egress agent put one there. */
export function peerFromContext(context: unknown): UpstreamPeer | undefined {
  if (typeof context !== "object" || context === null) return undefined;
  const peer = (context as Record<symbol, unknown>)[UPSTREAM_PEER];
  return typeof peer === "object" && peer !== null ? (peer as UpstreamPeer) : undefined;
}

/** SHA-256 of the leaf's SubjectPublicKeyInfo DER, as `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256` gives it. */
export function leafSpkiSha256(socket: TLSSocket): Uint8Array | undefined {
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return undefined;
  const spki = leaf.publicKey.export({ type: "spki", format: "der" });
  return new Uint8Array(createHash("sha256").update(spki).digest());
}

export class UnverifiedPeerError extends EgwError<"ERR_UPSTREAM_TLS"> {
  override readonly name = "UnverifiedPeerError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_UPSTREAM_TLS", message, "reject", options);
  }
}

type Connector = (
  options: Parameters<Extract<NonNullable<Client.Options["connect"]>, (...args: never[]) => unknown>>[0],
  callback: (...args: [null, Socket] | [Error, null]) => void,
) => void;

interface PeerState {
  peer: UpstreamPeer | undefined;
}

/**
 * Records the peer of every socket `inner` delivers. A TLS socket must be
 * authorized (rejectUnauthorized is set, so an unverified one never gets
 * here; checked again so a misconfiguration fails closed) and present a leaf.
 */
function recordingConnector(inner: Connector, state: PeerState): Connector {
  return (options, callback) => {
    inner(options, (err: Error | null, socket: Socket | null) => {
      if (err || !socket) return callback(err ?? new UnverifiedPeerError("upstream connector returned no socket"), null);
      let peer: UpstreamPeer;
      if (socket instanceof TLSSocket) {
        const tlsSpkiSha256 = socket.authorized ? leafSpkiSha256(socket) : undefined;
        if (!tlsSpkiSha256) {
          socket.destroy();
          return callback(new UnverifiedPeerError("upstream TLS peer is not verified"), null);
        }
        socket.disableRenegotiation();
        peer = { tlsSpkiSha256 };
      } else {
        peer = {};
      }
      state.peer = peer;
      callback(null, socket);
    });
  };
}

/**
 * Forwards every (legacy-API) handler call; onConnect adds the Client's
 * current peer to the context. undici's request() uses this API; a handler
 * without it passes through unwrapped and so carries no peer (the receipt
 * then claims none).
 */
class PeerHandler implements Dispatcher.DispatchHandler {
  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly state: PeerState,
  ) {}
  onConnect(abort: (err?: Error) => void, context?: object): void {
    const peer = this.state.peer;
    const call = this.inner.onConnect as (abort: (err?: Error) => void, context?: object) => void;
    call.call(this.inner, abort, peer ? { ...(context ?? {}), [UPSTREAM_PEER]: peer } : context);
  }
  onError(err: Error): void {
    this.inner.onError?.(err);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: import("node:stream").Duplex): void {
    this.inner.onUpgrade?.(statusCode, headers, socket);
  }
  onResponseStarted(): void {
    this.inner.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.inner.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.inner.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | null): void {
    this.inner.onComplete?.(trailers);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.inner.onBodySent?.(chunkSize, totalBytesSent);
  }
}

/** A Client that tags each request with the peer of the connection it is written on. */
class PeerClient extends Client {
  readonly #state: PeerState;
  constructor(origin: string | URL, options: Client.Options) {
    const inner = options.connect;
    if (typeof inner !== "function") throw new TypeError("PeerClient expects the pool's connector function");
    const state: PeerState = { peer: undefined };
    super(origin, { ...options, connect: recordingConnector(inner as unknown as Connector, state) as unknown as Client.Options["connect"] });
    this.#state = state;
  }
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (typeof handler.onConnect !== "function") return super.dispatch(options, handler);
    return super.dispatch(options, new PeerHandler(handler, this.#state));
  }
}

/** The Agent (and ProxyAgent) `factory`: one Pool per origin, of peer-recording Clients. */
export function peerRecordingPoolFactory(origin: string | URL, options: object): Dispatcher {
  return new Pool(origin, { ...(options as Pool.Options), factory: (o: string | URL, clientOptions: object) => new PeerClient(o, clientOptions as Client.Options) });
}
