import { GatewayError } from "../../errors.js";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EmbeddingsResponse, ImagesRequest, ImagesResponse } from "../canonical/types.js";
import { parseEventJson, readSse } from "../shared/read-sse.js";
import { streamReadFailure } from "../shared/stream-read-failure.js";
import { networkError, postJson, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type ProviderAdapter, type ProviderCallContext, type ProviderInfo } from "../types.js";
import { checkHeaders, normalizeBaseUrl } from "./check-openai-options.js";
import { checkChatCompletion, checkChunk, checkEmbeddings, checkImages } from "./check-openai-response.js";
import { openaiAudio, openaiCompletions, openaiModerations, openaiOnly, openaiSpeech } from "./openai-more-endpoints.js";
import { openaiNativeResponses } from "./openai-native-responses.js";

/**
 * Adapter for OpenAI and for every endpoint that speaks its wire format
 * (xAI, OpenRouter, vLLM, Ollama, ByteDance ModelArk …), configured by base
 * URL alone.
 *
 * The request goes upstream as the client sent it: unknown fields pass
 * through untouched (OpenRouter's `provider`, vLLM's `guided_json`,
 * ModelArk's `watermark` / `seed` / `sequential_image_generation` …); only
 * `model` is replaced by the route's upstream model. Responses are checked
 * for the fields the gateway's types promise and otherwise passed on as
 * parsed, extra fields included.
 */
export interface OpenAIAdapterOptions {
  /** Instance name from config ("openai", "xai", "seedream" …). */
  name: string;
  /** "openai" for api.openai.com itself; anything else is "openai-compatible" (the default). */
  kind?: "openai" | "openai-compatible";
  /**
   * Base URL including the API version path, as the `openai` SDK's
   * `baseURL`: https://api.openai.com/v1, https://api.x.ai/v1,
   * https://openrouter.ai/api/v1, http://127.0.0.1:11434/v1,
   * https://ark.ap-southeast.bytepluses.com/api/v3.
   */
  baseUrl: string;
  /**
   * Bearer token source, read on every call (keys come from KMS and may
   * rotate). Omit for endpoints that need none (local Ollama / vLLM).
   */
  apiKey?: () => string | Promise<string>;
  /** Extra request headers (OpenRouter's HTTP-Referer, OpenAI-Organization …). Cannot override `authorization`. */
  extraHeaders?: Record<string, string>;
  /**
   * What this endpoint serves; chat, embeddings and images default to true (a disabled one throws
   * GatewayError("unsupported_capability")). `responses` (the Responses API spoken natively, so
   * /v1/responses passes through) defaults to true for kind openai and to false otherwise: most
   * OpenAI-compatible servers speak Chat Completions only, and those are translated.
   */
  capabilities?: { chat?: boolean; embeddings?: boolean; images?: boolean; responses?: boolean };
}

/** Event data that ends an OpenAI stream. A stream that closes without it was cut off. */
export const OPENAI_STREAM_DONE = "[DONE]";

export function createOpenAIAdapter(options: OpenAIAdapterOptions): ProviderAdapter {
  const baseUrl = normalizeBaseUrl(options.baseUrl);
  const name = options.name;
  if (typeof name !== "string" || name === "") throw new TypeError('"name" expected a non-empty string');
  const info: ProviderInfo = { name, kind: options.kind ?? "openai-compatible", baseUrl, requestIdHeader: "x-request-id" };
  const capabilities = {
    chat: options.capabilities?.chat ?? true,
    embeddings: options.capabilities?.embeddings ?? true,
    images: options.capabilities?.images ?? true,
  };
  const extraHeaders = checkHeaders(options.extraHeaders ?? {});
  const speaksResponses = options.capabilities?.responses ?? info.kind === "openai";

  /** The client's OpenAI headers (kind openai only: they name OpenAI's organizations and projects), then ours over them. */
  async function headers(ctx?: ProviderCallContext): Promise<Record<string, string>> {
    const forwarded = info.kind === "openai" ? (ctx?.clientHeaders ?? {}) : {};
    const result: Record<string, string> = { ...forwarded, ...extraHeaders };
    if (options.apiKey) {
      const key = await options.apiKey();
      // A key with CR/LF would let header injection through; an empty one
      // would send an anonymous request. Neither is worth forwarding, and
      // the message must not quote the key.
      if (typeof key !== "string" || key === "" || /[\r\n\0]/.test(key)) {
        throw new GatewayError("internal_error", `provider "${name}" has no usable API key`);
      }
      result.authorization = `Bearer ${key}`;
    }
    return result;
  }

  function ensure(capability: keyof typeof capabilities): void {
    if (!capabilities[capability]) {
      throw new GatewayError("unsupported_capability", `provider "${name}" does not serve ${capability}`);
    }
  }

  const endpoint = { name, baseUrl, headers };

  return {
    info,
    ...(speaksResponses && { nativeResponses: openaiNativeResponses(name, baseUrl, headers) }),
    // Legacy completions are a chat capability: with chat off, the surface's chat translation refuses them.
    ...(capabilities.chat && { completions: openaiCompletions(endpoint) }),

    async moderations(request, ctx) {
      openaiOnly(info.kind, name, "moderations");
      return openaiModerations(endpoint, request, ctx);
    },

    async audio(upload, ctx) {
      openaiOnly(info.kind, name, "audio");
      return openaiAudio(endpoint, upload, ctx);
    },

    async speech(request, ctx) {
      openaiOnly(info.kind, name, "audio");
      return openaiSpeech(endpoint, request, ctx);
    },

    async chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
      ensure("chat");
      const body: Record<string, unknown> = { ...request, model: ctx.upstreamModel };
      // A non-streamed call must get JSON back. OpenAI rejects
      // stream_options without stream, so both go together.
      if (body.stream !== undefined && body.stream !== false) {
        delete body.stream;
        delete body.stream_options;
      }
      const response = await postJson(ctx, name, `${baseUrl}/chat/completions`, body, await headers(ctx));
      return checkChatCompletion(await readJson(ctx, name, response), name);
    },

    chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncIterable<ChatCompletionChunk> {
      return streamChat(request, ctx);
    },

    async embeddings(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse> {
      ensure("embeddings");
      const body = { ...request, model: ctx.upstreamModel };
      const response = await postJson(ctx, name, `${baseUrl}/embeddings`, body, await headers(ctx));
      return checkEmbeddings(await readJson(ctx, name, response), name);
    },

    async images(request: ImagesRequest, ctx: ProviderCallContext): Promise<ImagesResponse> {
      ensure("images");
      // ModelArk streams grouped Seedream images as SSE when asked; this
      // method returns one JSON document, so a streamed request is refused
      // before anything goes upstream.
      if (request.stream !== undefined && request.stream !== false) {
        throw new GatewayError("invalid_request", "streamed image generation is not supported");
      }
      const body = { ...request, model: ctx.upstreamModel };
      const response = await postJson(ctx, name, `${baseUrl}/images/generations`, body, await headers(ctx));
      return checkImages(await readJson(ctx, name, response), name);
    },
  };

  async function* streamChat(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
    ensure("chat");
    const body = { ...request, model: ctx.upstreamModel, stream: true };
    const response = await postJson(ctx, name, `${baseUrl}/chat/completions`, body, await headers(ctx));
    const contentType = response.headers.get("content-type");
    if (contentType !== null && !/^text\/event-stream\b/i.test(contentType.trim())) {
      response.body?.destroy();
      throw new UpstreamError("malformed", `${name}: stream answered with a non-SSE content type`);
    }
    let yielded = 0;
    let done = false;
    try {
      for await (const event of readSse(response.body)) {
        if (event.data === OPENAI_STREAM_DONE) {
          done = true;
          break;
        }
        const chunk = checkChunk(parseEventJson(event, name), name);
        yielded++;
        yield chunk;
      }
    } catch (cause) {
      throw streamReadFailure(ctx, name, cause, yielded > 0);
    }
    if (!done) {
      if (ctx.signal.aborted) throw networkError(ctx, name, ctx.signal.reason);
      throw new UpstreamError("malformed", `${name}: stream ended without [DONE]`);
    }
  }
}
