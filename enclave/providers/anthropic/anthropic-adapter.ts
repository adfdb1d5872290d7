import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from "../canonical/types.js";
import { parseEventJson, readSse } from "../shared/read-sse.js";
import { streamReadFailure } from "../shared/stream-read-failure.js";
import { postJson, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type AnthropicClientHeaders, type NativeMessages, type ProviderAdapter, type ProviderCallContext } from "../types.js";
import { fromAnthropicMessage } from "./convert-from-anthropic-message.js";
import { toAnthropicRequest } from "./convert-to-anthropic-messages-request.js";
import { AnthropicStreamMapper, streamErrorStatus } from "./map-anthropic-stream.js";

/**
 * Adapter for Anthropic's Messages API (POST {baseUrl}/v1/messages,
 * `x-api-key` + `anthropic-version` headers). The translation lives in the
 * convert-…/map-… files beside it; this file only does the I/O: one request, then either one JSON
 * body or an SSE stream mapped event by event.
 */
export interface AnthropicAdapterOptions {
  /** Provider instance name from config. */
  name: string;
  /** e.g. https://api.anthropic.com (no /v1). */
  baseUrl: string;
  /** Called per request, so a key rotated in memory takes effect at once. */
  apiKey: () => string | Promise<string>;
  /** `anthropic-version` header; default "2023-06-01". */
  anthropicVersion?: string;
  /** max_tokens when the client sent none (Anthropic requires it); default 4096. */
  defaultMaxTokens?: number;
}

export const DEFAULT_ANTHROPIC_VERSION = "2023-06-01";
export const DEFAULT_ANTHROPIC_MAX_TOKENS = 4096;

export function createAnthropicAdapter(options: AnthropicAdapterOptions): ProviderAdapter {
  const { name } = options;
  const version = options.anthropicVersion ?? DEFAULT_ANTHROPIC_VERSION;
  const defaultMaxTokens = options.defaultMaxTokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS;
  if (!Number.isSafeInteger(defaultMaxTokens) || defaultMaxTokens < 1) {
    throw new TypeError(`"defaultMaxTokens" expected a positive integer, got ${defaultMaxTokens}`);
  }
  const url = `${options.baseUrl.replace(/\/+$/, "")}/v1/messages`;

  // On the native path the client's anthropic-version and anthropic-beta
  // (checked and bounded by the surface) go upstream as sent: a beta the
  // client asked for must reach Anthropic, or the feature is silently off.
  const headers = async (client: AnthropicClientHeaders = {}): Promise<Record<string, string>> => ({
    "x-api-key": await options.apiKey(),
    "anthropic-version": client.version ?? version,
    ...(client.beta !== undefined && { "anthropic-beta": client.beta }),
  });

  const native: NativeMessages = {
    async messages(body, ctx, client) {
      const response = await postJson(ctx, name, url, { ...body, model: ctx.upstreamModel, stream: false }, await headers(client));
      const json = await readJson(ctx, name, response);
      if (json === null || typeof json !== "object" || Array.isArray(json) || (json as { type?: unknown }).type !== "message") {
        throw new UpstreamError("malformed", `${name}: answer is not a Messages object`);
      }
      // Re-serialized from the parsed value: the bytes sent to the client are
      // what the receipt covers; JSON.parse/stringify keeps every field.
      return { bytes: new TextEncoder().encode(JSON.stringify(json)), model: (json as { model?: unknown }).model };
    },
    async *messagesStream(body, ctx, onModel, client) {
      const response = await postJson(ctx, name, url, { ...body, model: ctx.upstreamModel, stream: true }, await headers(client));
      let yielded = 0;
      try {
        for await (const event of readSse(response.body)) {
          if (event.data === "") continue;
          const parsed = parseEventJson(event, name) as { type?: unknown; error?: { type?: unknown } };
          if (event.event === "error" || parsed.type === "error") {
            // Passed through only until the first byte: before it, the
            // gateway may still retry; so surface it as an UpstreamError.
            throw new UpstreamError("status", `${name}: stream error event`, streamErrorStatus(typeof parsed.error?.type === "string" ? parsed.error.type : undefined), undefined);
          }
          if (parsed.type === "message_start") onModel?.((parsed as { message?: { model?: unknown } }).message?.model);
          yielded++;
          yield `event: ${event.event ?? String(parsed.type ?? "message")}\ndata: ${event.data}\n\n`;
          if (parsed.type === "message_stop") return;
        }
      } catch (cause) {
        throw streamReadFailure(ctx, name, cause, yielded > 0);
      }
      throw new UpstreamError("malformed", `${name}: stream ended before message_stop`);
    },
    async countTokens(body, ctx, client) {
      const response = await postJson(ctx, name, `${url}/count_tokens`, { ...body, model: ctx.upstreamModel }, await headers(client));
      const json = await readJson(ctx, name, response);
      const count = (json as { input_tokens?: unknown } | null)?.input_tokens;
      if (json === null || typeof json !== "object" || Array.isArray(json) || typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
        throw new UpstreamError("malformed", `${name}: answer is not a token count`);
      }
      return json as Record<string, unknown>;
    },
  };

  return {
    info: { name, kind: "anthropic", baseUrl: options.baseUrl, requestIdHeader: "request-id" },
    native,

    async chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
      const body = toAnthropicRequest(request, { model: ctx.upstreamModel, defaultMaxTokens, stream: false });
      const response = await postJson(ctx, name, url, body, await headers());
      const json = await readJson(ctx, name, response);
      return fromAnthropicMessage(json, { provider: name, now: ctx.now });
    },

    async *chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
      // Translation errors (GatewayError) surface before any request is made.
      const body = toAnthropicRequest(request, { model: ctx.upstreamModel, defaultMaxTokens, stream: true });
      const response = await postJson(ctx, name, url, body, await headers());
      const mapper = new AnthropicStreamMapper({
        provider: name,
        includeUsage: request.stream_options?.include_usage === true,
        now: ctx.now,
      });
      let yielded = 0;
      try {
        for await (const event of readSse(response.body)) {
          // Comment-only or data-less events (keep-alives) carry nothing.
          if (event.data === "") continue;
          for (const chunk of mapper.push(parseEventJson(event, name))) {
            yielded++;
            yield chunk;
          }
          // Stop reading at message_stop: readSse's cleanup cancels the body.
          if (mapper.done) return;
        }
      } catch (cause) {
        throw streamReadFailure(ctx, name, cause, yielded > 0);
      }
      mapper.end();
    },
  };
}
