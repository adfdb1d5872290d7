import { upstreamBody } from "../http/node-body.js";
import { randomUUID } from "node:crypto";
import { GatewayError } from "../errors.js";
import { createGeminiStreamMapper } from "../translate/gemini-stream.js";
import { fromGeminiResponse, toGeminiRequest } from "../translate/openai-to-gemini.js";
import { networkError, postJson, readJson } from "./http.js";
import { parseEventJson, readSse } from "./sse.js";
import {
  UpstreamError,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatRequest,
  type EmbeddingsRequest,
  type EmbeddingsResponse,
  type ProviderAdapter,
  type ProviderCallContext,
} from "./types.js";

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
/** OpenAI's own bound on inputs per embeddings request. */
const MAX_EMBED_INPUTS = 2048;

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
      throw scrub(err);
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
    let response: Response;
    try {
      response = await postJson(ctx, name, `${methodUrl(model, "streamGenerateContent")}?alt=sse`, body, await headers(), GEMINI_RETRY);
    } catch (err) {
      throw scrub(err);
    }
    const type = response.headers.get("content-type") ?? "";
    if (!/^text\/event-stream\b/i.test(type)) {
      response.body?.cancel().catch(() => {});
      throw new UpstreamError("malformed", `${name}: stream response is not text/event-stream`);
    }
    const events = readSse(upstreamBody(response), options.maxSseEventBytes === undefined ? {} : { maxEventBytes: options.maxSseEventBytes });
    try {
      for (;;) {
        let next: IteratorResult<{ event: string | undefined; data: string; id: string | undefined }>;
        try {
          next = await events.next();
        } catch (err) {
          throw streamFailure(ctx, name, err);
        }
        if (next.done) break;
        let chunks: ChatCompletionChunk[];
        try {
          chunks = mapper.push(parseEventJson(next.value, name));
        } catch (err) {
          throw scrub(err);
        }
        // Each chunk goes out as soon as its event is in: nothing is held back.
        for (const chunk of chunks) yield chunk;
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
      throw scrub(err);
    }
    // batchEmbedContents reports no token counts on most models; when it
    // does not, usage is 0 rather than a guess.
    return { object: "list", data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } };
  }

  return {
    // Google documents no request id header for the Gemini API; some of its
    // front ends send x-goog-request-id, taken when present.
    info: { name, kind: "gemini", baseUrl, requestIdHeader: "x-goog-request-id" },
    chat,
    chatStream,
    embeddings,
  };
}

function embeddingInputs(request: EmbeddingsRequest): string[] {
  const input: unknown = request.input;
  const list = typeof input === "string" ? [input] : input;
  if (!Array.isArray(list) || list.length === 0) throw new GatewayError("invalid_request", "input must be a string or a non-empty array of strings");
  if (!list.every((item) => typeof item === "string")) {
    throw new GatewayError("unsupported_capability", "Gemini embeddings take text; token-id arrays are not supported");
  }
  if (list.length > MAX_EMBED_INPUTS) throw new GatewayError("invalid_request", `input may hold at most ${MAX_EMBED_INPUTS} strings`);
  return list as string[];
}

function embeddingVectors(json: unknown, expected: number, provider: string): number[][] {
  const embeddings = typeof json === "object" && json !== null ? (json as Record<string, unknown>).embeddings : undefined;
  if (!Array.isArray(embeddings) || embeddings.length !== expected) {
    throw new UpstreamError("malformed", `${provider}: batchEmbedContents answer does not match the request`);
  }
  return embeddings.map((e: unknown) => {
    const values = typeof e === "object" && e !== null ? (e as Record<string, unknown>).values : undefined;
    if (!Array.isArray(values) || !values.every((v) => typeof v === "number" && Number.isFinite(v))) {
      throw new UpstreamError("malformed", `${provider}: embedding values are not numbers`);
    }
    return values as number[];
  });
}

function embeddingTokens(json: unknown): number {
  const usage = typeof json === "object" && json !== null ? (json as Record<string, unknown>).usageMetadata : undefined;
  const count = typeof usage === "object" && usage !== null ? (usage as Record<string, unknown>).promptTokenCount : undefined;
  return typeof count === "number" && Number.isInteger(count) && count >= 0 ? count : 0;
}

/** OpenAI's base64 encoding: the float32 little-endian bytes of the vector. */
export function float32Base64(values: number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return Buffer.from(view.buffer).toString("base64");
}

/**
 * A failure while reading the stream body: the client's abort or a timeout
 * as such, our own errors unchanged, anything else (socket reset, TLS error)
 * as a connection lost mid-stream.
 */
function streamFailure(ctx: ProviderCallContext, provider: string, err: unknown): UpstreamError {
  if (ctx.signal.aborted || err instanceof UpstreamError) return scrub(networkError(ctx, provider, err)) as UpstreamError;
  return new UpstreamError("connect", `${provider}: upstream connection lost mid-stream`, undefined, undefined, { cause: err });
}

/**
 * JSON.parse's SyntaxError quotes the text it failed on (V8: `Unexpected
 * token 'X', "<first ~10 chars>"... is not valid JSON`), and a provider body
 * may echo the prompt. http.ts and sse.ts no longer attach it as `cause`;
 * this keeps the guarantee local should that regress (the canary tests in
 * gemini-errors.test.ts pin it). Kind, message and status are kept.
 */
function scrub(err: unknown): unknown {
  if (err instanceof UpstreamError && err.cause instanceof SyntaxError) {
    return new UpstreamError(err.kind, err.message, err.status, err.retryAfterSeconds);
  }
  return err;
}
