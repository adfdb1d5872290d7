import { UpstreamError, type ProviderCallContext } from "../types.js";
import { networkError } from "./upstream-http.js";

/**
 * The one mapping, for every adapter, of a failure while an upstream stream
 * body is being read (after the headers came). In order:
 *
 * 1. The call's signal fired (client gone, idle or total timeout): that is
 *    what happened, whatever the body read threw — "aborted" or "timeout",
 *    as networkError names it.
 * 2. An UpstreamError (a malformed event, an in-band error event, an
 *    oversized SSE event) is already named: passed on unchanged.
 * 3. Anything else is the connection breaking (reset, TLS error, socket
 *    destroyed). Before the first chunk reached the caller nothing was
 *    delivered, so it is "connect" and may be retried; after it the answer
 *    is truncated: "malformed", never retryable, because a retry would send
 *    the client a second answer after part of the first.
 *
 * The result never carries a SyntaxError as `cause`: V8's message quotes the
 * text it failed on, and a provider body may echo the prompt.
 */
export function streamReadFailure(ctx: ProviderCallContext, provider: string, cause: unknown, delivered: boolean): UpstreamError {
  if (ctx.signal.aborted) return withoutSyntaxCause(networkError(ctx, provider, cause));
  if (cause instanceof UpstreamError) return withoutSyntaxCause(cause);
  const message = `${provider}: upstream connection lost mid-stream`;
  return new UpstreamError(delivered ? "malformed" : "connect", message, undefined, undefined, { cause });
}

/** Kind, message, status and retry hint kept; a SyntaxError cause dropped (see above). */
export function withoutSyntaxCause<E>(err: E): E {
  if (err instanceof UpstreamError && err.cause instanceof SyntaxError) {
    return new UpstreamError(err.kind, err.message, err.status, err.retryAfterSeconds) as E;
  }
  return err;
}
