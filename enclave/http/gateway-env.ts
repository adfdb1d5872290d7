import type { IncomingMessage, ServerResponse } from "node:http";
import type { Reservation } from "../limits/byte-budget.js";
import type { AudioUpload } from "../providers/types.js";
import type { ClientConfig } from "../runtime-config.js";
import type { Surface } from "./error-body.js";
import type { Exchange } from "./exchange.js";

/** What the gateway reads of a request (made by requestView, request-view.ts). */
export interface HeaderReader {
  get(name: string): string | null;
}

export interface RequestView {
  headers: HeaderReader;
  /** The raw body stream, when on Node. */
  incoming: IncomingMessage | undefined;
  /** The Request, when not on Node. */
  request: Request | undefined;
  /** Aborts when the client disconnects before the response is finished. */
  readonly signal: AbortSignal;
}

/**
 * What the gateway's Hono app is typed over. The bindings come from the
 * server layer (enclave/server.ts) through @hono/node-server's `c.env`; in
 * unit tests `app.request(path, init, env)` passes them, or nothing.
 * The variables are what the middleware (enclave/http/middleware/) hands on
 * to the surface handlers (enclave/surfaces/).
 */
export interface GatewayBindings {
  /** Node's request and response, on a real server (@hono/node-server's HttpBindings). */
  incoming?: IncomingMessage;
  outgoing?: ServerResponse;
  /**
   * The client address the host relay reported in its PROXY v2 header for
   * this connection: null when the relay said nothing usable (LOCAL, UNIX),
   * absent when the server does not read PROXY headers.
   */
  relayAddress?: string | null;
}

export interface GatewayVariables {
  view: RequestView;
  exchange: Exchange;
  /** Which API's error shape answers this request. */
  errorSurface: Surface;
  /** A model call: a refusal before its body was read may have to close the connection. */
  readsBody: boolean;
  client: ClientConfig;
  slot: Slot;
  body: Record<string, unknown>;
  /** A multipart audio upload (surfaces/audio/multipart-upload.ts), in place of `body`. */
  upload: AudioUpload;
}

/** A model call's concurrency slot (middleware/concurrency.ts). */
export interface Slot {
  /** The body's bytes in the shared in-flight budget (limits/byte-budget.ts). */
  readonly reservation: Reservation;
  /** Gives the slot back; later calls do nothing. */
  release(): void;
  /** Takes over the slot: the request's end no longer releases it, the returned function does. */
  handOff(): () => void;
}

export interface GatewayEnv {
  Bindings: GatewayBindings;
  Variables: GatewayVariables;
}
