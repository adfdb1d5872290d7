import type { Readable } from "node:stream";
import { EgwError } from "../../../attestation/egw-error.js";
import { asUpstreamResponse, type UpstreamResponse } from "../../http/upstream-response.js";
import { providerDetails, UpstreamError, type ProviderCallContext } from "../types.js";

/** Largest non-streamed upstream JSON body the gateway will read. */
export const MAX_UPSTREAM_JSON_BYTES = 32 * 1024 * 1024;
/** How much of an upstream error body is read (then discarded). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * `retry-after` is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Returns seconds, capped, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: Date, capSeconds = 60): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), capSeconds);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, Math.ceil((date - now.getTime()) / 1000)), capSeconds);
}

/**
 * POSTs JSON upstream through the context's fetch and returns the response
 * once its status is 2xx. Non-2xx answers become UpstreamError("status")
 * with the provider's retry-after; the error body is drained (bounded) and
 * dropped, because providers echo prompts in error messages. Network
 * failures become "connect", aborts "aborted" (or "timeout" when the
 * signal's reason says so).
 */
export async function postJson(
  ctx: ProviderCallContext,
  provider: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  options: { retryHint?: (errorBody: string) => number | undefined } = {},
): Promise<UpstreamResponse> {
  return postBody(ctx, provider, url, JSON.stringify(body), { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, options);
}

/** postJson for a body that is already bytes (a multipart upload forwarded as received): same statuses, errors and retry hints. */
export async function postBody(
  ctx: ProviderCallContext,
  provider: string,
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string>,
  options: { retryHint?: (errorBody: string) => number | undefined } = {},
): Promise<UpstreamResponse> {
  let response: UpstreamResponse;
  try {
    response = asUpstreamResponse(await ctx.fetch(url, { method: "POST", headers, body, signal: ctx.signal }));
  } catch (cause) {
    throw networkError(ctx, provider, cause);
  }
  if (response.status >= 200 && response.status < 300) return response;
  const errorBody = await drain(response);
  // The header wins; some providers (Gemini) put the hint in the body only.
  let retryAfter = parseRetryAfter(response.headers.get("retry-after"), ctx.now());
  if (retryAfter === undefined && options.retryHint) {
    try {
      retryAfter = options.retryHint(errorBody);
    } catch {
      retryAfter = undefined;
    }
  }
  const error = new UpstreamError("status", `${provider} answered HTTP ${response.status}`, response.status, retryAfter);
  if (response.status >= 400 && response.status < 500 && response.status !== 401 && response.status !== 403 && response.status !== 429) {
    const detail = providerMessage(errorBody);
    if (detail !== undefined) providerDetails.set(error, detail);
  }
  throw error;
}

export function networkError(ctx: ProviderCallContext, provider: string, cause: unknown): UpstreamError {
  if (ctx.signal.aborted) {
    const reason = ctx.signal.reason as { name?: string } | undefined;
    const timedOut = reason?.name === "TimeoutError";
    return new UpstreamError(timedOut ? "timeout" : "aborted", `${provider}: request ${timedOut ? "timed out" : "aborted"}`, undefined, undefined, { cause });
  }
  if (cause instanceof UpstreamError) return cause;
  return new UpstreamError("connect", `${provider}: cannot reach upstream`, undefined, undefined, { cause });
}

/**
 * The human explanation in a provider's error body: OpenAI and Gemini put it
 * in `error.message`, Anthropic in `error.message` under `type: "error"`.
 * Bounded and stripped of control characters.
 */
export function providerMessage(errorBody: string): string | undefined {
  try {
    const parsed = JSON.parse(errorBody) as { error?: { message?: unknown } | string; message?: unknown };
    const message = typeof parsed.error === "object" && parsed.error !== null ? parsed.error.message : parsed.message;
    if (typeof message !== "string" || message.length === 0) return undefined;
    // eslint-disable-next-line no-control-regex
    return message.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, 500);
  } catch {
    return undefined;
  }
}

/** Reads at most 64 KiB of an error body, for retry hints only; it is never logged or returned to clients. */
async function drain(response: UpstreamResponse): Promise<string> {
  const node = response.body;
  if (!node) return "";
  try {
    const bytes = await collectNode(node, MAX_ERROR_BODY_BYTES, false);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  } catch {
    // The status is what matters; a broken error body changes nothing.
    return "";
  } finally {
    node.destroy();
  }
}

/**
 * Collects a Node stream up to `limit` bytes. Over the limit: throws
 * LimitExceeded when `strict`, else returns the first `limit` bytes. The
 * caller destroys the stream.
 */
class LimitExceeded extends EgwError<"ERR_UPSTREAM_BODY_TOO_LARGE"> {
  constructor() {
    super("ERR_UPSTREAM_BODY_TOO_LARGE", "upstream body over its limit", "reject");
  }
}
function collectNode(node: Readable, limit: number, strict: boolean): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (err: unknown) => {
      node.off("data", onData);
      node.off("end", onEnd);
      node.off("error", onError);
      node.off("close", onClose);
      if (err) reject(err);
      else resolve(chunks.length === 1 && total <= limit ? chunks[0]! : Buffer.concat(chunks).subarray(0, limit));
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      chunks.push(chunk);
      if (total > limit) finish(strict ? new LimitExceeded() : undefined);
    };
    const onEnd = () => finish(undefined);
    const onError = (err: Error) => finish(err);
    const onClose = () => finish(new Error("upstream body closed early"));
    node.on("data", onData);
    node.on("end", onEnd);
    node.on("error", onError);
    node.on("close", onClose);
  });
}

/** Reads a whole body up to `limit` bytes (a transcript as text, srt or vtt); over it, or cut, is a malformed upstream. */
export async function readBytes(ctx: ProviderCallContext, provider: string, response: UpstreamResponse, limit = MAX_UPSTREAM_JSON_BYTES): Promise<Uint8Array> {
  const node = response.body;
  if (!node) return new Uint8Array(0);
  try {
    return await collectNode(node, limit, true);
  } catch (cause) {
    if (cause instanceof LimitExceeded) throw new UpstreamError("malformed", `${provider}: response larger than ${limit} bytes`);
    throw networkError(ctx, provider, cause);
  } finally {
    node.destroy();
  }
}

/** Reads a JSON body with a size bound; unreadable JSON is a malformed upstream. */
export async function readJson(ctx: ProviderCallContext, provider: string, response: UpstreamResponse): Promise<unknown> {
  const length = Number(response.headers.get("content-length") ?? "0");
  if (length > MAX_UPSTREAM_JSON_BYTES) throw new UpstreamError("malformed", `${provider}: response larger than ${MAX_UPSTREAM_JSON_BYTES} bytes`);
  const node = response.body;
  if (!node) throw new UpstreamError("malformed", `${provider}: response has no body`);
  let bytes: Uint8Array;
  try {
    bytes = await collectNode(node, MAX_UPSTREAM_JSON_BYTES, true);
  } catch (cause) {
    if (cause instanceof LimitExceeded) throw new UpstreamError("malformed", `${provider}: response larger than ${MAX_UPSTREAM_JSON_BYTES} bytes`);
    throw networkError(ctx, provider, cause);
  } finally {
    node.destroy();
  }
  return parseUpstreamJson(provider, bytes);
}

function parseUpstreamJson(provider: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch {
    // No `cause`: a SyntaxError's message quotes the body, which may echo the prompt.
    throw new UpstreamError("malformed", `${provider}: response is not JSON`);
  }
}
