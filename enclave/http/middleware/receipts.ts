import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { GatewayError } from "../../errors.js";
import type { Surface } from "../error-body.js";
import type { Exchange } from "../exchange.js";
import type { GatewayEnv } from "../gateway-env.js";
import type { Responder } from "../responder.js";
import { newExchange } from "./exchange-record.js";

/**
 * Refusals and failures get receipts too. Hono hands an error thrown by any
 * middleware or handler to the app's error handler at the point it was
 * thrown, so this is where they become signed answers in the surface's error
 * shape (responder.ts), with the exchange the request opened. The
 * concurrency slot is given back after, as the request unwinds.
 */
export interface ReceiptsOptions {
  responder: Responder;
  now: () => Date;
}

/** A refused request's unread body up to this size (declared) is discarded on the open connection, not closed on. */
const DISCARD_UNREAD_BYTES = 64 * 1024;

export function signedErrors(options: ReceiptsOptions): ErrorHandler<GatewayEnv> {
  const { responder, now } = options;
  return function signedError(err, c) {
    const ex = c.get("exchange") as Exchange | undefined;
    if (ex === undefined) {
      // Outside the surfaces' exchange (health, metrics): an unknown failure.
      const e = err instanceof GatewayError ? err : new GatewayError("internal_error", "Internal error.", { cause: err });
      return responder.fail(newExchange(c, "unknown", now), e, "openai");
    }
    return responder.fail(ex, err, c.var.errorSurface, c.var.readsBody && bodyLeftUnread(c, ex));
  };
}

/** Unknown paths: a signed not_found, in the Anthropic shape under /v1/messages, Google's under /v1beta/. */
export function signedNotFound(options: ReceiptsOptions): NotFoundHandler<GatewayEnv> {
  const { responder, now } = options;
  return function signedUnknownPath(c) {
    const surface: Surface = c.req.path.startsWith("/v1/messages") ? "anthropic" : c.req.path.startsWith("/v1beta/") ? "gemini" : "openai";
    return responder.fail(newExchange(c, "unknown", now), new GatewayError("not_found", "Unknown path."), surface);
  };
}

/**
 * Whether the answer must close the connection: the body was not (fully)
 * read, Node has not already received all of it, and it is not declared
 * small. Closing keeps the unread rest from ever being read (Node stops
 * reading a socket it closes). A small declared body is left to
 * @hono/node-server, which discards it without keeping it (bounded in time
 * and bytes), so that a client still writing it gets its answer instead of
 * a reset, and keeps its connection.
 */
export function bodyLeftUnread(c: Context<GatewayEnv>, ex: Exchange): boolean {
  if (ex.bodyRead) return false;
  if (c.env?.incoming?.complete === true) return false;
  const declared = c.var.view.headers.get("content-length");
  return declared === null || !/^\d{1,9}$/.test(declared) || Number(declared) > DISCARD_UNREAD_BYTES;
}
