import type { Context } from "hono";
import type { GatewayBindings, GatewayEnv, RequestView } from "./gateway-env.js";

/**
 * What the gateway reads of a request: headers, the body bytes, and a
 * signal that fires when the client goes away.
 *
 * On Node (the enclave), this reads the IncomingMessage that
 * @hono/node-server hands over in `c.env`. Touching `c.req.raw` instead makes
 * the adapter build a WHATWG Request around it: a Headers copy, a
 * ReadableStream over the body and an AbortSignal wired to the socket.
 * Measured on the benchmark machine, that was a large share of a small
 * request's CPU time. Elsewhere (Hono's `app.request()` in unit tests) it
 * falls back to the Request, with the same behaviour.
 */
// Declared with the gateway env, which holds one per request, so the two files import one way only.
export type { HeaderReader, RequestView } from "./gateway-env.js";

export function requestView(c: Context<GatewayEnv>): RequestView {
  const env = c.env as GatewayBindings | undefined;
  const incoming = env?.incoming;
  const outgoing = env?.outgoing;
  if (!incoming || !outgoing || typeof incoming.headers !== "object") {
    return { headers: c.req.raw.headers, incoming: undefined, request: c.req.raw, signal: c.req.raw.signal };
  }
  let controller: AbortController | undefined;
  return {
    headers: {
      get(name: string): string | null {
        // Node lowercases names, and joins repeats of most headers with ", "
        // (it keeps the first Authorization, Content-Type and Content-Length).
        const value = incoming.headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(", ") : value;
      },
    },
    incoming,
    request: undefined,
    // Made only when an upstream call needs it: most of a request's life
    // (auth, limits, local answers) never does.
    get signal(): AbortSignal {
      if (!controller) {
        const made = new AbortController();
        controller = made;
        if (outgoing.destroyed && !outgoing.writableFinished) made.abort(new Error("client disconnected"));
        else {
          outgoing.once("close", () => {
            if (!outgoing.writableFinished) made.abort(new Error("client disconnected"));
          });
        }
      }
      return controller.signal;
    },
  };
}
