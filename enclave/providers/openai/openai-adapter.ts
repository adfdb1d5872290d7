import { upstreamBody } from "../http/node-body.js";
import { GatewayError } from "../errors.js";
import { networkError, postJson, readJson } from "./http.js";
import { parseEventJson, readSse } from "./sse.js";
import {
  UpstreamError,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatRequest,
  type EmbeddingsRequest,
  type EmbeddingsResponse,
  type ImagesRequest,
  type ImagesResponse,
  type ProviderAdapter,
  type ProviderCallContext,
  type ProviderInfo,
} from "./types.js";

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
  /** What this endpoint serves; each defaults to true. A disabled one throws GatewayError("unsupported_capability"). */
  capabilities?: { chat?: boolean; embeddings?: boolean; images?: boolean };
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

  async function headers(): Promise<Record<string, string>> {
    const result: Record<string, string> = { ...extraHeaders };
    if (options.apiKey) {
      const key = await options.apiKey();
      // A key with CR/LF would let header injection through; an empty one
      // would send an anonymous request. Neither is worth forwarding, and
      // the message must not quote the key.
      if (typeof key !== "string" || key === "" || /[\r\n\0]/.test(key)) {
        throw new GatewayError("internal_error", `provider "${name}" has no usable API key`);
      }
      result["authorization"] = `Bearer ${key}`;
    }
    return result;
  }

  function ensure(capability: keyof typeof capabilities): void {
    if (!capabilities[capability]) {
      throw new GatewayError("unsupported_capability", `provider "${name}" does not serve ${capability}`);
    }
  }

  return {
    info,

    async chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
      ensure("chat");
      const body: Record<string, unknown> = { ...request, model: ctx.upstreamModel };
      // A non-streamed call must get JSON back. OpenAI rejects
      // stream_options without stream, so both go together.
      if (body["stream"] !== undefined && body["stream"] !== false) {
        delete body["stream"];
        delete body["stream_options"];
      }
      const response = await postJson(ctx, name, `${baseUrl}/chat/completions`, body, await headers());
      return checkChatCompletion(await readJson(ctx, name, response), name);
    },

    chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncIterable<ChatCompletionChunk> {
      return streamChat(request, ctx);
    },

    async embeddings(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse> {
      ensure("embeddings");
      const body = { ...request, model: ctx.upstreamModel };
      const response = await postJson(ctx, name, `${baseUrl}/embeddings`, body, await headers());
      return checkEmbeddings(await readJson(ctx, name, response), name);
    },

    async images(request: ImagesRequest, ctx: ProviderCallContext): Promise<ImagesResponse> {
      ensure("images");
      // ModelArk streams grouped Seedream images as SSE when asked; this
      // method returns one JSON document, so a streamed request is refused
      // before anything goes upstream.
      if (request["stream"] !== undefined && request["stream"] !== false) {
        throw new GatewayError("invalid_request", "streamed image generation is not supported");
      }
      const body = { ...request, model: ctx.upstreamModel };
      const response = await postJson(ctx, name, `${baseUrl}/images/generations`, body, await headers());
      return checkImages(await readJson(ctx, name, response), name);
    },
  };

  async function* streamChat(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
    ensure("chat");
    const body = { ...request, model: ctx.upstreamModel, stream: true };
    const response = await postJson(ctx, name, `${baseUrl}/chat/completions`, body, await headers());
    const contentType = response.headers.get("content-type");
    if (contentType !== null && !/^text\/event-stream\b/i.test(contentType.trim())) {
      response.body?.cancel().catch(() => {});
      throw new UpstreamError("malformed", `${name}: stream answered with a non-SSE content type`);
    }
    let yielded = 0;
    let done = false;
    try {
      for await (const event of readSse(upstreamBody(response))) {
        if (event.data === OPENAI_STREAM_DONE) {
          done = true;
          break;
        }
        const chunk = checkChunk(parseEventJson(event, name), name);
        yielded++;
        yield chunk;
      }
    } catch (cause) {
      if (cause instanceof UpstreamError) throw cause;
      // The body broke while being read (reset, abort, timeout). Before the
      // first chunk nothing has reached the client, so it counts as a
      // connect failure (retryable); after it the answer is truncated.
      const mapped = networkError(ctx, name, cause);
      if (mapped.kind === "connect" && yielded > 0) {
        throw new UpstreamError("malformed", `${name}: stream cut off before [DONE]`, undefined, undefined, { cause });
      }
      throw mapped;
    }
    if (!done) {
      if (ctx.signal.aborted) throw networkError(ctx, name, ctx.signal.reason);
      throw new UpstreamError("malformed", `${name}: stream ended without [DONE]`);
    }
  }
}

// ─── Configuration guards ────────────────────────────────────────────────────

function normalizeBaseUrl(value: unknown): string {
  if (typeof value !== "string") throw new TypeError('"baseUrl" expected a string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`"baseUrl" expected an absolute URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(`"baseUrl" expected http: or https:, got ${url.protocol}`);
  }
  if (url.search !== "" || url.hash !== "") throw new TypeError('"baseUrl" must not carry a query or fragment');
  if (url.username !== "" || url.password !== "") throw new TypeError('"baseUrl" must not carry credentials');
  return url.href.replace(/\/+$/, "");
}

function checkHeaders(headers: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    const lower = key.toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower)) throw new TypeError(`"extraHeaders" has an invalid header name ${JSON.stringify(key)}`);
    if (typeof value !== "string" || /[\r\n\0]/.test(value)) throw new TypeError(`"extraHeaders.${key}" expected a single-line string`);
    if (lower === "authorization" || lower === "content-type" || lower === "content-length" || lower === "host") {
      throw new TypeError(`"extraHeaders" may not set ${lower}`);
    }
    result[lower] = value;
  }
  return result;
}

// ─── Response shape checks ───────────────────────────────────────────────────
//
// Enough to make the contract types true and to keep a confused or hostile
// upstream from handing the gateway something it would trip over: the
// fields the types declare must be there with the right JSON type; every
// other field passes through. Messages name the field, never its value
// (upstream text may echo the prompt).

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function malformed(provider: string, what: string): UpstreamError {
  return new UpstreamError("malformed", `${provider}: ${what}`);
}

function expectString(obj: Json, key: string, provider: string, where: string): void {
  if (typeof obj[key] !== "string") throw malformed(provider, `${where}.${key} is not a string`);
}

function expectNumber(obj: Json, key: string, provider: string, where: string): void {
  if (typeof obj[key] !== "number" || !Number.isFinite(obj[key])) throw malformed(provider, `${where}.${key} is not a number`);
}

function optional(obj: Json, key: string, types: readonly string[], provider: string, where: string): void {
  const value = obj[key];
  if (value === undefined) return;
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  if (!types.includes(type)) throw malformed(provider, `${where}.${key} has the wrong type`);
}

function checkUsage(obj: Json, key: string, provider: string, where: string, allowNull: boolean): void {
  const usage = obj[key];
  if (usage === undefined || (allowNull && usage === null)) return;
  if (!isObject(usage)) throw malformed(provider, `${where}.${key} is not an object`);
  for (const field of ["prompt_tokens", "completion_tokens", "total_tokens"]) {
    expectNumber(usage, field, provider, `${where}.${key}`);
  }
}

/** An in-band error object: OpenAI and OpenRouter send these with HTTP 200, in streams too. */
function checkInBandError(obj: Json, provider: string): void {
  if (obj["error"] !== undefined && obj["error"] !== null) {
    throw new UpstreamError("status", `${provider}: upstream reported an error in the response body`);
  }
}

/**
 * A completion and a stream chunk share their shape: top-level id, created,
 * model and choices, each choice with a `message` (completion) or a `delta`
 * (chunk). One walk checks both.
 */
function checkChoicesShape(value: unknown, provider: string, kind: "completion" | "chunk"): Json {
  const label = kind === "completion" ? "completion" : "stream chunk";
  if (!isObject(value)) throw malformed(provider, `${label} is not a JSON object`);
  checkInBandError(value, provider);
  expectString(value, "id", provider, kind);
  expectNumber(value, "created", provider, kind);
  expectString(value, "model", provider, kind);
  optional(value, "object", ["string"], provider, kind);
  const choices = value["choices"];
  if (!Array.isArray(choices)) throw malformed(provider, `${kind}.choices is not an array`);
  const field = kind === "completion" ? "message" : "delta";
  const isDelta = kind === "chunk";
  choices.forEach((choice: unknown, i) => {
    const where = `${kind}.choices[${i}]`;
    if (!isObject(choice)) throw malformed(provider, `${where} is not an object`);
    expectNumber(choice, "index", provider, where);
    optional(choice, "finish_reason", ["string", "null"], provider, where);
    const body = choice[field];
    if (!isObject(body)) throw malformed(provider, `${where}.${field} is not an object`);
    optional(body, "role", ["string"], provider, `${where}.${field}`);
    optional(body, "content", ["string", "null"], provider, `${where}.${field}`);
    optional(body, "refusal", ["string", "null"], provider, `${where}.${field}`);
    checkToolCalls(body, provider, `${where}.${field}`, isDelta);
  });
  checkUsage(value, "usage", provider, kind, isDelta);
  return value;
}

function checkChatCompletion(value: unknown, provider: string): ChatCompletion {
  return checkChoicesShape(value, provider, "completion") as unknown as ChatCompletion;
}

function checkChunk(value: unknown, provider: string): ChatCompletionChunk {
  return checkChoicesShape(value, provider, "chunk") as unknown as ChatCompletionChunk;
}

function checkToolCalls(holder: Json, provider: string, where: string, isDelta: boolean): void {
  const calls = holder["tool_calls"];
  if (calls === undefined || calls === null) return;
  if (!Array.isArray(calls)) throw malformed(provider, `${where}.tool_calls is not an array`);
  calls.forEach((call: unknown, i) => {
    const at = `${where}.tool_calls[${i}]`;
    if (!isObject(call)) throw malformed(provider, `${at} is not an object`);
    const fn = call["function"];
    if (isDelta) {
      expectNumber(call, "index", provider, at);
      optional(call, "id", ["string"], provider, at);
      optional(call, "type", ["string"], provider, at);
      if (fn === undefined) return;
      if (!isObject(fn)) throw malformed(provider, `${at}.function is not an object`);
      optional(fn, "name", ["string"], provider, `${at}.function`);
      optional(fn, "arguments", ["string"], provider, `${at}.function`);
    } else {
      expectString(call, "id", provider, at);
      optional(call, "type", ["string"], provider, at);
      if (!isObject(fn)) throw malformed(provider, `${at}.function is not an object`);
      expectString(fn, "name", provider, `${at}.function`);
      expectString(fn, "arguments", provider, `${at}.function`);
    }
  });
}

function checkEmbeddings(value: unknown, provider: string): EmbeddingsResponse {
  if (!isObject(value)) throw malformed(provider, "embeddings response is not a JSON object");
  checkInBandError(value, provider);
  optional(value, "object", ["string"], provider, "embeddings");
  expectString(value, "model", provider, "embeddings");
  const data = value["data"];
  if (!Array.isArray(data)) throw malformed(provider, "embeddings.data is not an array");
  data.forEach((item: unknown, i) => {
    const where = `embeddings.data[${i}]`;
    if (!isObject(item)) throw malformed(provider, `${where} is not an object`);
    expectNumber(item, "index", provider, where);
    const embedding = item["embedding"];
    const ok =
      typeof embedding === "string" ||
      (Array.isArray(embedding) && embedding.every((x) => typeof x === "number" && Number.isFinite(x)));
    if (!ok) throw malformed(provider, `${where}.embedding is neither a number array nor a base64 string`);
  });
  const usage = value["usage"];
  if (!isObject(usage)) throw malformed(provider, "embeddings.usage is not an object");
  expectNumber(usage, "prompt_tokens", provider, "embeddings.usage");
  expectNumber(usage, "total_tokens", provider, "embeddings.usage");
  return value as unknown as EmbeddingsResponse;
}

function checkImages(value: unknown, provider: string): ImagesResponse {
  if (!isObject(value)) throw malformed(provider, "images response is not a JSON object");
  checkInBandError(value, provider);
  expectNumber(value, "created", provider, "images");
  const data = value["data"];
  if (!Array.isArray(data)) throw malformed(provider, "images.data is not an array");
  data.forEach((item: unknown, i) => {
    const where = `images.data[${i}]`;
    if (!isObject(item)) throw malformed(provider, `${where} is not an object`);
    optional(item, "url", ["string"], provider, where);
    optional(item, "b64_json", ["string"], provider, where);
    optional(item, "revised_prompt", ["string"], provider, where);
  });
  return value as unknown as ImagesResponse;
}
