import { EgwError, type EgwErrorAction } from "../../attestation/egw-error.js";
import type { UpstreamFetch } from "../http/upstream-response.js";

/**
 * The contract between the API surfaces and the provider adapters.
 *
 * The canonical request and response shapes live in canonical/types.ts and
 * are re-exported here, so a surface needs one import for the contract.
 * Adapters translate to and from their provider's wire format with byte-level
 * care and never buffer a stream: `chatStream` yields each chunk as soon as
 * the provider's event for it has arrived.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EmbeddingsResponse, ImagesRequest, ImagesResponse } from "./canonical/types.js";

export type {
  ContentPart,
  ToolCall,
  ChatMessage,
  ToolDefinition,
  ToolChoice,
  ChatRequest,
  FinishReason,
  Usage,
  ChatCompletion,
  ChatCompletionChunk,
  EmbeddingsRequest,
  EmbeddingsResponse,
  ImagesRequest,
  ImagesResponse,
} from "./canonical/types.js";

// ─── Adapter contract ────────────────────────────────────────────────────────

/** What the gateway hands every adapter call. All I/O goes through these. */
export interface ProviderCallContext {
  /** Egress-aware fetch (the enclave's allowlist and timeouts live behind it); answers with a Node body (http/upstream-response.ts). */
  fetch: UpstreamFetch;
  /** Aborted when the client disconnects or a timeout fires; adapters pass it to fetch. */
  signal: AbortSignal;
  /** The upstream model id (the route's target, not the alias the client sent). */
  upstreamModel: string;
  /** Clock for `created` fields and ids. */
  now: () => Date;
  /**
   * Headers the client sent that its provider's own API reads, bounded by
   * the surface (http/openai-client-headers.ts: OpenAI-Beta, -Organization,
   * -Project). Only the adapter of the provider they mean sends them, under
   * its own headers; every other adapter ignores them.
   */
  clientHeaders?: Readonly<Record<string, string>>;
}

/** Static description of a configured provider instance. */
export interface ProviderInfo {
  /** Instance name from config, e.g. "openai", "anthropic", "xai", "local". */
  name: string;
  kind: "openai" | "openai-compatible" | "anthropic" | "gemini" | "bedrock" | "local";
  /** Base URL of the upstream API (for the receipt's upstream host and the egress allowlist). */
  baseUrl: string;
  /**
   * The response header that carries the provider's own request id (OpenAI
   * `x-request-id`, Anthropic `request-id`); copied into the receipt's
   * upstream.request_id when present. Absent: the provider sends none.
   */
  requestIdHeader?: string;
}

/**
 * Anthropic's Messages API spoken natively. Only the Anthropic adapter has
 * it: on `/v1/messages` an Anthropic route is then a pass-through (model
 * replaced, nothing translated), so every Anthropic feature works as sent.
 */
export interface NativeMessages {
  /** The upstream JSON body (checked to be a Messages object, every field kept), and the model it reports (for the receipt). */
  messages(body: Record<string, unknown>, ctx: ProviderCallContext, headers?: AnthropicClientHeaders): Promise<{ bytes: Uint8Array; model: unknown }>;
  /**
   * Yields each upstream SSE event re-framed as `event: …\ndata: …\n\n`,
   * data as received; `onModel` gets the model message_start reports.
   */
  messagesStream(body: Record<string, unknown>, ctx: ProviderCallContext, onModel?: (model: unknown) => void, headers?: AnthropicClientHeaders): AsyncIterable<string>;
  /** POST /v1/messages/count_tokens passed through: the upstream `{input_tokens}` object, checked, every field kept. */
  countTokens?(body: Record<string, unknown>, ctx: ProviderCallContext, headers?: AnthropicClientHeaders): Promise<Record<string, unknown>>;
}

/**
 * The client's own `anthropic-version` / `anthropic-beta` headers, checked
 * and bounded by the surface (surfaces/anthropic-messages/client-headers.ts),
 * forwarded on native Anthropic routes in place of the adapter's defaults.
 */
export interface AnthropicClientHeaders {
  version?: string;
  beta?: string;
}

/** OpenAI's legacy text completions (POST /v1/completions), spoken natively by OpenAI-format upstreams. */
export interface NativeCompletions {
  /** The upstream JSON (checked to be a text_completion, every field kept). */
  create(body: Record<string, unknown>, ctx: ProviderCallContext): Promise<Record<string, unknown>>;
  /** Each upstream `data:` event's JSON, in order, ending at `[DONE]`; never buffered. */
  stream(body: Record<string, unknown>, ctx: ProviderCallContext): AsyncIterable<Record<string, unknown>>;
}

/** One multipart audio upload (transcriptions or translations), as received. */
export interface AudioUpload {
  task: "transcriptions" | "translations";
  /** The exact multipart bytes the client sent (what the receipt hashes) and their content type, boundary included. */
  bytes: Uint8Array;
  contentType: string;
  /** The form as parsed (undici's FormData): model, file, response_format … */
  form: FormData;
  /** The uploaded file's bytes. */
  file: Uint8Array;
  /** The model field the client sent (routing may replace it upstream). */
  model: string;
}

/** A complete answer that is not necessarily JSON (transcripts as text/srt/vtt). */
export interface RawAnswer {
  bytes: Uint8Array;
  contentType: string;
}

/** A binary answer streamed as it arrives (speech audio). */
export interface BinaryStream {
  contentType: string;
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * OpenAI's Responses API spoken natively (OpenAI, and openai-compatible
 * endpoints whose capabilities say `responses`): on `/v1/responses` such a
 * route is a pass-through, model replaced and nothing else touched.
 * `headers` are the OpenAI headers the client sent that go upstream as
 * they are (openai-beta, openai-organization, openai-project), already
 * checked and bounded by the surface.
 */
export interface NativeResponses {
  /** POST /responses (stream false): the upstream JSON body, checked to be a Response object, and the model it reports. */
  create(body: Record<string, unknown>, headers: Record<string, string>, ctx: ProviderCallContext): Promise<{ bytes: Uint8Array; model: unknown }>;
  /**
   * POST /responses (stream true): each upstream SSE event re-framed as
   * `event: …\ndata: …\n\n`, data as received, unknown event types
   * included; `observe` sees each parsed event (sequence numbers, the
   * response snapshot) so that the surface can end a broken stream in kind.
   */
  createStream(body: Record<string, unknown>, headers: Record<string, string>, ctx: ProviderCallContext, observe?: (event: Record<string, unknown>) => void): AsyncIterable<string>;
  /**
   * GET/DELETE on a stored response (`/responses/{id}`, `/responses/{id}/input_items`):
   * `path` is that suffix with its query, already checked. Any 2xx JSON answer is passed on.
   */
  stored(method: "GET" | "DELETE", path: string, headers: Record<string, string>, ctx: ProviderCallContext): Promise<{ bytes: Uint8Array; model: unknown }>;
}

/**
 * Google's Gemini API (v1beta) spoken natively. Only the Gemini adapter has
 * it: on `/v1beta/models/{model}:{method}` a Gemini route is then a
 * pass-through (the model in the path, and in batchEmbedContents' requests,
 * replaced by the route's upstream model; every other field kept).
 */
export type NativeGeminiMethod = "generateContent" | "countTokens" | "embedContent" | "batchEmbedContents";

export interface NativeGemini {
  /** The upstream JSON answer of one unary method (checked to be a JSON object, every field kept), and the model it reports (for the receipt). */
  call(method: NativeGeminiMethod, body: Record<string, unknown>, ctx: ProviderCallContext): Promise<{ bytes: Uint8Array; model: unknown }>;
  /**
   * `streamGenerateContent?alt=sse`: yields each upstream event re-framed as
   * `data: …\r\n\r\n` (Google's framing), data as received; `onModel` gets the
   * modelVersion of the first event. An in-stream `{"error":…}` is thrown as an UpstreamError.
   */
  stream(body: Record<string, unknown>, ctx: ProviderCallContext, onModel?: (model: unknown) => void): AsyncIterable<string>;
}

export interface ProviderAdapter {
  readonly info: ProviderInfo;
  readonly native?: NativeMessages;
  readonly nativeResponses?: NativeResponses;
  readonly nativeGemini?: NativeGemini;
  chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion>;
  /** Yields chunks as the provider's events arrive; never buffers the whole answer. */
  chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncIterable<ChatCompletionChunk>;
  embeddings?(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse>;
  images?(request: ImagesRequest, ctx: ProviderCallContext): Promise<ImagesResponse>;
  /**
   * Checks made once before first use (Bedrock: whose AWS credentials these
   * are, with STS). The boot awaits it for every adapter, so a provider that
   * cannot be used stops the boot; the adapter awaits it on every call too.
   */
  ready?(fetch: UpstreamFetch): Promise<void>;
  /** The provider's own token counter over a canonical request (Gemini countTokens): the prompt's token count. */
  countTokens?(request: ChatRequest, ctx: ProviderCallContext): Promise<number>;
  /** POST /v1/moderations: the provider's JSON answer (OpenAI's shape). */
  moderations?(request: Record<string, unknown>, ctx: ProviderCallContext): Promise<unknown>;
  /** POST /v1/completions spoken natively; absent: the surface translates to chat. */
  readonly completions?: NativeCompletions;
  /** POST /v1/audio/transcriptions and /translations. */
  audio?(upload: AudioUpload, ctx: ProviderCallContext): Promise<RawAnswer>;
  /** POST /v1/audio/speech: binary audio, streamed. */
  speech?(request: Record<string, unknown>, ctx: ProviderCallContext): Promise<BinaryStream>;
}

/**
 * For a 4xx the client can fix: the provider's own explanation (its
 * error.message, bounded), for the client's eyes only. Kept outside the
 * error object, so no logger, serializer or inspector that is handed an
 * UpstreamError can print provider text (which may quote the prompt).
 */
export const providerDetails = new WeakMap<UpstreamError, string>();

/** Connect failures, timeouts, 429 and 5xx may pass on retry; 401/403 is the enclave's provider key; another 4xx is the request's; an unreadable answer is not used. */
function upstreamAction(kind: UpstreamErrorKind, status: number | undefined): EgwErrorAction {
  if (kind === "connect" || kind === "timeout") return "retry";
  if (kind === "status") return status === 429 || (status ?? 0) >= 500 ? "retry" : status === 401 || status === 403 ? "fix-config" : "fix-input";
  return kind === "malformed" ? "reject" : "stop";
}

/**
 * Thrown by adapters for anything upstream: the status the provider gave (or
 * none for connect failures and timeouts), whether a retry may help, and a
 * provider `retry-after` in seconds. Never carries the upstream body text,
 * which may echo the prompt.
 */
export type UpstreamErrorKind = "status" | "connect" | "timeout" | "malformed" | "aborted";

export class UpstreamError extends EgwError<`ERR_UPSTREAM_${Uppercase<UpstreamErrorKind>}`> {
  override readonly name = "UpstreamError";
  constructor(
    readonly kind: UpstreamErrorKind,
    message: string,
    readonly status: number | undefined = undefined,
    readonly retryAfterSeconds: number | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(`ERR_UPSTREAM_${kind.toUpperCase() as Uppercase<UpstreamErrorKind>}`, message, upstreamAction(kind, status), options);
  }

  /** 429, 5xx and connect errors are worth retrying, and only before any byte reached the client. */
  get retryable(): boolean {
    return this.kind === "connect" || (this.kind === "status" && (this.status === 429 || (this.status ?? 0) >= 500));
  }
}
