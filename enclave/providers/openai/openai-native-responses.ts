import { parseEventJson, readSse } from "../shared/read-sse.js";
import { streamReadFailure } from "../shared/stream-read-failure.js";
import { networkError, parseRetryAfter, postJson, providerMessage, readJson } from "../shared/upstream-http.js";
import { asUpstreamResponse, type UpstreamResponse } from "../../http/upstream-response.js";
import { providerDetails, UpstreamError, type NativeResponses, type ProviderCallContext } from "../types.js";

/**
 * OpenAI's Responses API passed through (POST {baseUrl}/responses and the
 * stored-response calls under it). The body goes upstream as the client
 * sent it, `model` replaced by the route's upstream model; the answer comes
 * back as OpenAI sent it: a non-streamed body is checked to be a Response
 * object and re-serialized from its parse (every field kept), a stream is
 * re-framed event by event with its data untouched. Event types this file
 * does not know pass through: OpenAI adds them often, and its SDKs ignore
 * the ones they do not know either.
 */

/** The events that end an OpenAI Responses stream (openai-node ResponseStreamEvent). */
export const RESPONSES_TERMINAL_EVENTS: readonly string[] = ["response.completed", "response.incomplete", "response.failed"];

/** How much of an error body from a stored-response call is read, for the provider's message only. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export function openaiNativeResponses(name: string, baseUrl: string, authHeaders: () => Promise<Record<string, string>>): NativeResponses {
  const url = `${baseUrl}/responses`;
  // The adapter's own headers (authorization, configured extras) win over the client's.
  const merged = async (client: Record<string, string>) => ({ ...client, ...(await authHeaders()) });

  return {
    async create(body, headers, ctx) {
      const response = await postJson(ctx, name, url, { ...body, model: ctx.upstreamModel, stream: false }, await merged(headers));
      const json = await readJson(ctx, name, response);
      return checkResponseObject(json, name);
    },

    async *createStream(body, headers, ctx, observe) {
      const response = await postJson(ctx, name, url, { ...body, model: ctx.upstreamModel, stream: true }, await merged(headers));
      const contentType = response.headers.get("content-type");
      if (contentType !== null && !/^text\/event-stream\b/i.test(contentType.trim())) {
        response.body?.destroy();
        throw new UpstreamError("malformed", `${name}: stream answered with a non-SSE content type`);
      }
      let yielded = 0;
      try {
        for await (const event of readSse(response.body)) {
          if (event.data === "") continue;
          const parsed = parseEventJson(event, name);
          if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new UpstreamError("malformed", `${name}: stream event is not a JSON object`);
          const record = parsed as Record<string, unknown>;
          const type = typeof record.type === "string" ? record.type : (event.event ?? "message");
          // Before the first byte reaches the client the gateway may still
          // retry or fall back, so an upstream error event is an error here;
          // after it, it passes through like any event.
          if (yielded === 0 && (type === "error" || event.event === "error")) throw new UpstreamError("status", `${name}: stream error event`, streamErrorStatus(record));
          observe?.(record);
          yielded++;
          yield frameSse(event.event ?? type, event.data);
          if (RESPONSES_TERMINAL_EVENTS.includes(type)) return;
        }
      } catch (cause) {
        throw streamReadFailure(ctx, name, cause, yielded > 0);
      }
      if (ctx.signal.aborted) throw networkError(ctx, name, ctx.signal.reason);
      throw new UpstreamError("malformed", `${name}: stream ended before response.completed`);
    },

    async stored(method, path, headers, ctx) {
      let response: UpstreamResponse;
      try {
        response = asUpstreamResponse(await ctx.fetch(`${url}${path}`, { method, headers: { accept: "application/json", ...(await merged(headers)) }, signal: ctx.signal }));
      } catch (cause) {
        throw networkError(ctx, name, cause);
      }
      if (response.status < 200 || response.status >= 300) throw await statusError(ctx, name, response);
      const json = await readJson(ctx, name, response);
      if (json === null || typeof json !== "object" || Array.isArray(json)) throw new UpstreamError("malformed", `${name}: answer is not a JSON object`);
      return { bytes: new TextEncoder().encode(JSON.stringify(json)), model: (json as { model?: unknown }).model };
    },
  };
}

/** A non-streamed Responses answer must be a Response object; every field is kept. */
function checkResponseObject(json: unknown, name: string): { bytes: Uint8Array; model: unknown } {
  if (json === null || typeof json !== "object" || Array.isArray(json) || (json as { object?: unknown }).object !== "response") {
    throw new UpstreamError("malformed", `${name}: answer is not a Response object`);
  }
  // Re-serialized from the parsed value: the bytes sent are what the receipt covers.
  return { bytes: new TextEncoder().encode(JSON.stringify(json)), model: (json as { model?: unknown }).model };
}

/** SSE framing as OpenAI frames it; a data value with line breaks becomes several data lines (WHATWG HTML §9.2.6 joins them back). */
export function frameSse(event: string, data: string): string {
  const safeEvent = event.replace(/[\r\n]/g, "");
  return `event: ${safeEvent}\n${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}`)
    .join("\n")}\n\n`;
}

/** An in-stream error before the first byte: rate limits may be retried, anything else is the provider failing. */
function streamErrorStatus(event: Record<string, unknown>): number {
  const nested = event.error !== null && typeof event.error === "object" ? (event.error as Record<string, unknown>) : {};
  const code = [event.code, nested.code, nested.type].find((v) => typeof v === "string") as string | undefined;
  if (code !== undefined && /rate_limit|rate-limit|too_many_requests/i.test(code)) return 429;
  return 500;
}

/** Like postJson's refusal: the status, the retry hint, and for a 4xx the client can fix the provider's own message (bounded). */
async function statusError(ctx: ProviderCallContext, name: string, response: UpstreamResponse): Promise<UpstreamError> {
  const text = await drain(response);
  const error = new UpstreamError("status", `${name} answered HTTP ${response.status}`, response.status, parseRetryAfter(response.headers.get("retry-after"), ctx.now()));
  if (response.status >= 400 && response.status < 500 && response.status !== 401 && response.status !== 403 && response.status !== 429) {
    const detail = providerMessage(text);
    if (detail !== undefined) providerDetails.set(error, detail);
  }
  return error;
}

async function drain(response: UpstreamResponse): Promise<string> {
  const node = response.body;
  if (!node) return "";
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of node as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.byteLength;
      if (total >= MAX_ERROR_BODY_BYTES) break;
    }
  } catch {
    // The status is what matters.
  } finally {
    node.destroy();
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString("utf8");
}
