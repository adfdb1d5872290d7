import { GatewayError } from "./errors.js";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, ProviderCallContext } from "./providers/types.js";
import { providerDetails, UpstreamError } from "./providers/types.js";
import type { Route } from "./router.js";
import type { UpstreamFetch } from "./http/upstream-response.js";
import type { Limits } from "./runtime-config.js";
import { ExchangeRecorder, type AnsweredBy } from "./upstream-provenance.js";

/**
 * Calls a provider with the gateway's timeouts, retries and fallbacks.
 *
 * Timeouts: connect (the egress agent), first byte (for a stream: its first
 * chunk; for a non-streamed call: the whole answer, which is its first
 * byte), idle between stream chunks, and a total budget for everything
 * including retries.
 * Retries: only for 429, 5xx and connect failures, only before any byte
 * has reached the client, with exponential backoff and jitter, honouring
 * the provider's retry-after; never past the total budget. Fallback routes
 * (configured per model) follow the same rules once a route's retries are
 * spent.
 */
export type UpstreamPolicy = Pick<Limits, "firstByteTimeoutMs" | "idleTimeoutMs" | "totalTimeoutMs" | "maxRetries" | "retryBaseDelayMs" | "retryMaxDelayMs">;

export interface UpstreamDeps {
  fetch: UpstreamFetch;
  now: () => Date;
  random: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  onAttempt?: (route: Route, outcome: "ok" | "retry" | "fail", error?: UpstreamError) => void;
}

export interface Attempted<T> {
  route: Route;
  value: T;
  attempts: number;
  /** The answering exchange's TLS key and provider request id (for streams: known at its headers). */
  answeredBy?: AnsweredBy;
}

function timeoutReason(what: string): DOMException {
  return new DOMException(`${what} timed out`, "TimeoutError");
}

export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Maps what finally went wrong upstream to what the client is told. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof UpstreamError) {
    switch (err.kind) {
      case "timeout":
        return new GatewayError("upstream_timeout", "The upstream provider did not answer in time.", { cause: err });
      case "connect":
        return new GatewayError("upstream_unreachable", "The upstream provider could not be reached.", { cause: err });
      case "malformed":
        return new GatewayError("upstream_error", "The upstream provider sent a response the gateway could not read.", { cause: err });
      case "aborted":
        return new GatewayError("upstream_error", "The upstream request was cancelled.", { cause: err });
      case "status": {
        const s = err.status ?? 502;
        if (s === 429)
          return new GatewayError("upstream_rate_limited", "The upstream provider is rate limiting; retry later.", { cause: err, retryAfter: err.retryAfterSeconds ?? 1 });
        // 401/403 mean the enclave's provider key is wrong: not the client's to fix, so 502 below.
        const said = providerDetails.get(err);
        const detail = said ? ` Provider says: ${said}` : "";
        if (s === 400 || s === 422) return new GatewayError("invalid_request", `The upstream provider rejected the request (HTTP ${s}).${detail}`, { cause: err });
        if (s === 404) return new GatewayError("model_not_found", `The upstream provider does not know this model.${detail}`, { cause: err });
        if (s === 413) return new GatewayError("request_too_large", "The upstream provider says the request is too large.", { cause: err });
        return new GatewayError("upstream_error", `The upstream provider failed (HTTP ${s}).`, { cause: err });
      }
    }
  }
  return new GatewayError("internal_error", "Internal error.", { cause: err });
}

function asUpstream(err: unknown, signal: AbortSignal): UpstreamError | GatewayError {
  if (err instanceof UpstreamError || err instanceof GatewayError) return err;
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    return new UpstreamError(reason?.name === "TimeoutError" ? "timeout" : "aborted", "upstream call ended", undefined, undefined, { cause: err });
  }
  return new UpstreamError("malformed", "adapter failed", undefined, undefined, { cause: err });
}

class Budget {
  readonly deadline: number;
  constructor(
    private readonly now: () => Date,
    totalMs: number,
  ) {
    this.deadline = now().getTime() + totalMs;
  }
  remaining(): number {
    return this.deadline - this.now().getTime();
  }
}

/** An AbortController for one attempt: follows the client, the total budget and a per-phase timer. */
class Attempt {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly onClient: () => void;

  constructor(
    private readonly client: AbortSignal,
    budget: Budget,
  ) {
    this.onClient = () => this.controller.abort(client.reason);
    if (client.aborted) this.onClient();
    else client.addEventListener("abort", this.onClient, { once: true });
    this.arm(budget.remaining(), "total");
  }

  /** (Re)arms the phase timer; the total budget is folded in by the caller. */
  arm(ms: number, what: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(timeoutReason(what)), Math.max(0, ms));
    this.timer.unref?.();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.client.removeEventListener("abort", this.onClient);
  }
}

function backoffMs(policy: UpstreamPolicy, attempt: number, err: UpstreamError, random: () => number): number {
  const exp = Math.min(policy.retryMaxDelayMs, policy.retryBaseDelayMs * 2 ** attempt);
  const jittered = exp * (0.5 + random() / 2);
  const hinted = err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : 0;
  return Math.max(jittered, hinted);
}

async function withRetries<T>(
  routes: Route[],
  clientSignal: AbortSignal,
  policy: UpstreamPolicy,
  deps: UpstreamDeps,
  attemptOnce: (route: Route, attempt: Attempt, budget: Budget, recorder: ExchangeRecorder) => Promise<T>,
): Promise<Attempted<T>> {
  const budget = new Budget(deps.now, policy.totalTimeoutMs);
  let attempts = 0;
  let last: UpstreamError | GatewayError | undefined;
  for (const route of routes) {
    for (let i = 0; i <= policy.maxRetries; i++) {
      if (clientSignal.aborted) throw new UpstreamError("aborted", "client went away");
      if (budget.remaining() <= 0) throw last ?? new UpstreamError("timeout", "total budget spent");
      const attempt = new Attempt(clientSignal, budget);
      const recorder = new ExchangeRecorder(deps.fetch);
      attempts++;
      try {
        const value = await attemptOnce(route, attempt, budget, recorder);
        deps.onAttempt?.(route, "ok");
        const answeredBy = recorder.answeredBy(route.adapter.info);
        return { route, value, attempts, ...(answeredBy && { answeredBy }) };
      } catch (err) {
        attempt.dispose();
        const e = asUpstream(err, attempt.controller.signal);
        last = e;
        if (!(e instanceof UpstreamError) || !e.retryable) {
          if (e instanceof UpstreamError) deps.onAttempt?.(route, "fail", e);
          throw e;
        }
        const wait = backoffMs(policy, i, e, deps.random);
        const lastTryOfRoute = i === policy.maxRetries;
        deps.onAttempt?.(route, lastTryOfRoute ? "fail" : "retry", e);
        if (lastTryOfRoute) break; // next fallback route, at once
        if (wait >= budget.remaining()) throw e;
        await deps.sleep(wait, clientSignal);
      }
    }
  }
  throw last ?? new UpstreamError("connect", "no route could be tried");
}

/**
 * The route's upstream model reaches the adapter here and only here: requests
 * pass through with the name the client sent, and every adapter writes
 * `ctx.upstreamModel` into what it sends upstream.
 */
function context(deps: UpstreamDeps, route: Route, attempt: Attempt, recorder: ExchangeRecorder, clientHeaders: ClientHeaders): ProviderCallContext {
  return { fetch: recorder.fetch, signal: attempt.controller.signal, upstreamModel: route.upstreamModel, now: deps.now, ...(clientHeaders && { clientHeaders }) };
}

/** The client's provider headers a surface bounded (ProviderCallContext.clientHeaders); undefined: none. */
type ClientHeaders = Readonly<Record<string, string>> | undefined;

export async function callChat(
  routes: Route[],
  request: ChatRequest,
  clientSignal: AbortSignal,
  policy: UpstreamPolicy,
  deps: UpstreamDeps,
  clientHeaders?: ClientHeaders,
): Promise<Attempted<ChatCompletion>> {
  return withRetries(routes, clientSignal, policy, deps, async (route, attempt, budget, recorder) => {
    attempt.arm(Math.min(policy.firstByteTimeoutMs, budget.remaining()), "first byte");
    try {
      return await route.adapter.chat(request, context(deps, route, attempt, recorder, clientHeaders));
    } finally {
      attempt.dispose();
    }
  });
}

/** Any non-chat call (embeddings, images): same policy, one round trip. */
export async function callOnce<T>(
  routes: Route[],
  clientSignal: AbortSignal,
  policy: UpstreamPolicy,
  deps: UpstreamDeps,
  run: (route: Route, ctx: ProviderCallContext) => Promise<T>,
  clientHeaders?: ClientHeaders,
): Promise<Attempted<T>> {
  return withRetries(routes, clientSignal, policy, deps, async (route, attempt, budget, recorder) => {
    attempt.arm(Math.min(policy.firstByteTimeoutMs, budget.remaining()), "first byte");
    try {
      return await run(route, context(deps, route, attempt, recorder, clientHeaders));
    } finally {
      attempt.dispose();
    }
  });
}

export interface OpenedStream<T = ChatCompletionChunk> {
  first: T;
  /** The remaining items, with the idle and total timeouts applied. Call `close` if you stop early. */
  rest: AsyncGenerator<T>;
  close: () => void;
}

/**
 * Opens a stream and waits for its first chunk, retrying and falling back
 * while nothing has been sent to the client. Once the first chunk is in
 * hand the choice is final: later failures end the stream, never retry.
 */
export function openChatStream(
  routes: Route[],
  request: ChatRequest,
  clientSignal: AbortSignal,
  policy: UpstreamPolicy,
  deps: UpstreamDeps,
  clientHeaders?: ClientHeaders,
): Promise<Attempted<OpenedStream>> {
  return openStream(routes, clientSignal, policy, deps, (route, ctx) => route.adapter.chatStream({ ...request, stream: true }, ctx), clientHeaders);
}

/** Any stream (chunks, or pre-framed SSE text): same timeouts, retries and fallbacks. */
export async function openStream<T>(
  routes: Route[],
  clientSignal: AbortSignal,
  policy: UpstreamPolicy,
  deps: UpstreamDeps,
  open: (route: Route, ctx: ProviderCallContext) => AsyncIterable<T>,
  clientHeaders?: ClientHeaders,
): Promise<Attempted<OpenedStream<T>>> {
  return withRetries(routes, clientSignal, policy, deps, async (route, attempt, budget, recorder) => {
    attempt.arm(Math.min(policy.firstByteTimeoutMs, budget.remaining()), "first chunk");
    const iterator = open(route, context(deps, route, attempt, recorder, clientHeaders))[Symbol.asyncIterator]();
    let first: IteratorResult<T>;
    try {
      first = await iterator.next();
    } catch (err) {
      await iterator.return?.(undefined).catch(() => {});
      throw err;
    }
    if (first.done) {
      attempt.dispose();
      throw new UpstreamError("malformed", "upstream stream ended before its first chunk");
    }
    const signal = attempt.controller.signal;
    const arm = () => attempt.arm(Math.min(policy.idleTimeoutMs, budget.remaining()), "idle");
    arm();
    async function* rest(): AsyncGenerator<T> {
      try {
        for (;;) {
          let next: IteratorResult<T>;
          try {
            next = await iterator.next();
          } catch (err) {
            throw asUpstream(err, signal);
          }
          if (next.done) return;
          arm();
          yield next.value;
        }
      } finally {
        attempt.dispose();
        await iterator.return?.(undefined).catch(() => {});
      }
    }
    return {
      first: first.value,
      rest: rest(),
      close: () => {
        attempt.controller.abort(new DOMException("client closed the stream", "AbortError"));
        attempt.dispose();
      },
    };
  });
}
