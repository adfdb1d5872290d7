import type { UpstreamResponse } from "../../http/upstream-response.js";
import { randomUUID } from "node:crypto";
import { GatewayError } from "../../errors.js";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EmbeddingsResponse } from "../canonical/types.js";
import { float32Base64 } from "../shared/float32-base64.js";
import { parseEventJson, readSse, type SseEvent } from "../shared/read-sse.js";
import { streamReadFailure, withoutSyntaxCause } from "../shared/stream-read-failure.js";
import { postJson, readJson } from "../shared/upstream-http.js";
import { UpstreamError, type ProviderAdapter, type ProviderCallContext } from "../types.js";
import { fromGeminiResponse } from "./convert-from-gemini-response.js";
import { embeddingInputs, embeddingTokens, embeddingVectors } from "./convert-gemini-embeddings.js";
import { toGeminiRequest } from "./convert-to-gemini-request.js";
import { createGeminiStreamMapper } from "./map-gemini-stream.js";
import { createNativeGemini } from "./native-gemini.js";

/**
 * Google Gemini API (generativelanguage.googleapis.com, v1beta REST).
 *
 * - chat:       POST {base}/v1beta/models/{model}:generateContent
 * - chatStream: POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse
 *               (without alt=sse Google streams one JSON array instead of events)
 * - embeddings: POST {base}/v1beta/models/{model}:batchEmbedContents
 *
 * The key travels in the `x-goog-api-key` header only, never as `?key=`:
 * URLs end up in proxy and access logs.
 */
export interface GeminiAdapterOptions {
  /** Instance name from config; used in error messages and ProviderInfo. */
  name: string;
  /** Default https://generativelanguage.googleapis.com; may carry a path prefix. */
  baseUrl?: string;
  /** Read on every call, so a rotated key takes effect without a restart. */
  apiKey: () => string | Promise<string>;
  /** Bound on one SSE event (default: readSse's). */
  maxSseEventBytes?: number;
}

export const GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com";

/** BatchEmbedContentsRequest refuses more than 100 requests ("at most 100 requests can be in one batch"). */
export const GEMINI_MAX_EMBED_BATCH = 100;

/**
 * The model is a URL path segment, so it is restricted to the characters
 * Google's model ids use and must start with a letter or digit: "." and ".."
 * (path traversal), "/", "?", "#", "%" and ":" (which would pick another
 * method) cannot get through. A leading "models/" — Google's resource-name
 * form, common in configs — is accepted and removed.
 */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function geminiModelId(model: unknown): string {
  const id = typeof model === "string" && model.startsWith("models/") ? model.slice("models/".length) : model;
  if (typeof id !== "string" || !MODEL_ID.test(id)) {
    throw new GatewayError("invalid_request", "model id for Gemini may hold only letters, digits, '.', '_' and '-'");
  }
  return id;
}

/**
 * Google sends its retry hint in the error body, as a google.rpc.RetryInfo
 * detail (`"retryDelay": "12s"`), not in a retry-after header. Capped at 60 s.
 */
export function geminiRetryHint(errorBody: string): number | undefined {
  const parsed = JSON.parse(errorBody) as { error?: { details?: { "@type"?: string; retryDelay?: string }[] } };
  for (const detail of parsed.error?.details ?? []) {
    if (detail["@type"] === "type.googleapis.com/google.rpc.RetryInfo" && typeof detail.retryDelay === "string") {
      const match = /^(\d{1,6})(?:\.\d+)?s$/.exec(detail.retryDelay);
      if (match) return Math.min(60, Math.ceil(Number(detail.retryDelay.slice(0, -1))));
    }
  }
  return undefined;
}

const GEMINI_RETRY = { retryHint: geminiRetryHint };

export function createGeminiAdapter(options: GeminiAdapterOptions): ProviderAdapter {
  const name = options.name;
  const baseUrl = (options.baseUrl ?? GEMINI_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const methodUrl = (model: string, method: string): string => `${baseUrl}/v1beta/models/${model}:${method}`;
  const headers = async (): Promise<Record<string, string>> => ({ "x-goog-api-key": await options.apiKey() });

  async function chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
    const model = geminiModelId(ctx.upstreamModel);
    const body = toGeminiRequest(request);
    try {
      const response = await postJson(ctx, name, methodUrl(model, "generateContent"), body, await headers(), GEMINI_RETRY);
      const json = await readJson(ctx, name, response);
      return fromGeminiResponse(json, {
        fallbackId: `chatcmpl-${randomUUID()}`,
        created: Math.floor(ctx.now().getTime() / 1000),
        model,
        provider: name,
      });
    } catch (err) {
      throw withoutSyntaxCause(err);
    }
  }

  async function* chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
    // Translation errors surface before any upstream call.
    const model = geminiModelId(ctx.upstreamModel);
    const body = toGeminiRequest(request);
    const mapper = createGeminiStreamMapper({
      fallbackId: `chatcmpl-${randomUUID()}`,
      created: Math.floor(ctx.now().getTime() / 1000),
      model,
      includeUsage: request.stream_options?.include_usage === true,
      provider: name,
    });
    let response: UpstreamResponse;
    try {
      response = await postJson(ctx, name, `${methodUrl(model, "streamGenerateContent")}?alt=sse`, body, await headers(), GEMINI_RETRY);
    } catch (err) {
      throw withoutSyntaxCause(err);
    }
    const type = response.headers.get("content-type") ?? "";
    if (!/^text\/event-stream\b/i.test(type)) {
      response.body?.destroy();
      throw new UpstreamError("malformed", `${name}: stream response is not text/event-stream`);
    }
    const events = readSse(response.body, options.maxSseEventBytes === undefined ? {} : { maxEventBytes: options.maxSseEventBytes });
    let yielded = 0;
    try {
      for (;;) {
        let next: IteratorResult<SseEvent>;
        try {
          next = await events.next();
        } catch (err) {
          throw streamReadFailure(ctx, name, err, yielded > 0);
        }
        if (next.done) break;
        let chunks: ChatCompletionChunk[];
        try {
          chunks = mapper.push(parseEventJson(next.value, name));
        } catch (err) {
          throw withoutSyntaxCause(err);
        }
        // Each chunk goes out as soon as its event is in: nothing is held back.
        for (const chunk of chunks) {
          yielded++;
          yield chunk;
        }
      }
    } finally {
      // Runs on the end, on an error, and when the consumer stops early (the
      // client went away): readSse's own finally cancels the upstream body.
      await events.return(undefined).catch(() => {});
    }
    yield* mapper.finish();
  }

  async function embeddings(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse> {
    const model = geminiModelId(ctx.upstreamModel);
    const inputs = embeddingInputs(request);
    const dimensions = request.dimensions;
    if (dimensions !== undefined && (!Number.isInteger(dimensions) || dimensions < 1)) {
      throw new GatewayError("invalid_request", "dimensions must be a positive integer");
    }
    const format = request.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") throw new GatewayError("invalid_request", "encoding_format must be float or base64");

    const data: EmbeddingsResponse["data"] = [];
    let promptTokens = 0;
    try {
      // Google caps a batch at 100; larger OpenAI requests become several
      // calls, in order, so indexes still match the input order.
      for (let start = 0; start < inputs.length; start += GEMINI_MAX_EMBED_BATCH) {
        const batch = inputs.slice(start, start + GEMINI_MAX_EMBED_BATCH);
        const body = {
          requests: batch.map((text) => ({
            model: `models/${model}`,
            content: { parts: [{ text }] },
            ...(dimensions === undefined ? {} : { outputDimensionality: dimensions }),
          })),
        };
        const response = await postJson(ctx, name, methodUrl(model, "batchEmbedContents"), body, await headers(), GEMINI_RETRY);
        const json = await readJson(ctx, name, response);
        const vectors = embeddingVectors(json, batch.length, name);
        vectors.forEach((values, k) => {
          data.push({ object: "embedding", index: start + k, embedding: format === "base64" ? float32Base64(values) : values });
        });
        promptTokens += embeddingTokens(json);
      }
    } catch (err) {
      throw withoutSyntaxCause(err);
    }
    // batchEmbedContents reports no token counts on most models; when it
    // does not, usage is 0 rather than a guess.
    return { object: "list", data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } };
  }

  /**
   * countTokens over the same request generateContent would get
   * (`generateContentRequest`, so the system instruction and tools count
   * too); the answer is `{"totalTokens": n, …}`.
   */
  async function countTokens(request: ChatRequest, ctx: ProviderCallContext): Promise<number> {
    const model = geminiModelId(ctx.upstreamModel);
    const body = { generateContentRequest: { model: `models/${model}`, ...toGeminiRequest(request) } };
    try {
      const response = await postJson(ctx, name, methodUrl(model, "countTokens"), body, await headers(), GEMINI_RETRY);
      const total = ((await readJson(ctx, name, response)) as { totalTokens?: unknown } | null)?.totalTokens;
      // proto3 JSON leaves out a zero count.
      const count = total === undefined ? 0 : total;
      if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) throw new UpstreamError("malformed", `${name}: countTokens answer has no totalTokens`);
      return count;
    } catch (err) {
      throw withoutSyntaxCause(err);
    }
  }

  return {
    // Google documents no request id header for the Gemini API; some of its
    // front ends send x-goog-request-id, taken when present.
    info: { name, kind: "gemini", baseUrl, requestIdHeader: "x-goog-request-id" },
    nativeGemini: createNativeGemini({
      name,
      methodUrl,
      headers,
      modelId: geminiModelId,
      retry: GEMINI_RETRY,
      ...(options.maxSseEventBytes === undefined ? {} : { maxSseEventBytes: options.maxSseEventBytes }),
    }),
    chat,
    chatStream,
    embeddings,
    countTokens,
  };
}
