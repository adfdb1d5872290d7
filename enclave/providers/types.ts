import { EgwError, type EgwErrorAction } from "../../attestation/egw-error.js";

/**
 * The contract between the API surfaces and the provider adapters.
 *
 * The canonical request and response shapes are OpenAI's Chat Completions
 * (the lingua franca every provider and client speaks), typed here only as
 * far as the gateway reads them; unknown fields pass through untouched.
 * Adapters translate to and from their provider's wire format with byte-level
 * care and never buffer a stream: `chatStream` yields each chunk as soon as
 * the provider's event for it has arrived.
 */

// ─── Canonical (OpenAI-shaped) types ─────────────────────────────────────────

export type ContentPart =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string; detail?: "auto" | "low" | "high" } }
  | { type: string; [key: string]: unknown };

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: "system" | "developer"; content: string | ContentPart[]; name?: string }
  | { role: "user"; content: string | ContentPart[]; name?: string }
  | { role: "assistant"; content?: string | ContentPart[] | null; tool_calls?: ToolCall[]; name?: string }
  | { role: "tool"; content: string | ContentPart[]; tool_call_id: string };

export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  tools?: ToolDefinition[];
  tool_choice?: ToolChoice;
  response_format?: { type: "text" | "json_object" | "json_schema"; json_schema?: Record<string, unknown> };
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  n?: number;
  user?: string;
  [key: string]: unknown;
}

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | null;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[]; refusal?: string | null };
    finish_reason: FinishReason;
    logprobs?: null;
  }[];
  usage?: Usage;
  system_fingerprint?: string | null;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: number;
    delta: {
      role?: "assistant";
      content?: string | null;
      tool_calls?: { index: number; id?: string; type?: "function"; function?: { name?: string; arguments?: string } }[];
      refusal?: string | null;
    };
    finish_reason: FinishReason;
    logprobs?: null;
  }[];
  /** Present (and `choices` empty) on the final chunk when stream_options.include_usage is set. */
  usage?: Usage | null;
}

export interface EmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: "float" | "base64";
  dimensions?: number;
  user?: string;
}

export interface EmbeddingsResponse {
  object: "list";
  data: { object: "embedding"; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export interface ImagesRequest {
  model: string;
  prompt: string;
  n?: number;
  size?: string;
  response_format?: "url" | "b64_json";
  [key: string]: unknown;
}

export interface ImagesResponse {
  created: number;
  data: { url?: string; b64_json?: string; revised_prompt?: string }[];
  [key: string]: unknown;
}

// ─── Adapter contract ────────────────────────────────────────────────────────

/** What the gateway hands every adapter call. All I/O goes through these. */
export interface ProviderCallContext {
  /** Egress-aware fetch (the enclave's allowlist and timeouts live behind it). */
  fetch: typeof fetch;
  /** Aborted when the client disconnects or a timeout fires; adapters pass it to fetch. */
  signal: AbortSignal;
  /** The upstream model id (the route's target, not the alias the client sent). */
  upstreamModel: string;
  /** Clock for `created` fields and ids. */
  now: () => Date;
}

/** Static description of a configured provider instance. */
export interface ProviderInfo {
  /** Instance name from config, e.g. "openai", "anthropic", "xai", "local". */
  name: string;
  kind: "openai" | "openai-compatible" | "anthropic" | "gemini" | "local";
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
  messages(body: Record<string, unknown>, ctx: ProviderCallContext): Promise<{ bytes: Uint8Array; model: unknown }>;
  /**
   * Yields each upstream SSE event re-framed as `event: …\ndata: …\n\n`,
   * data as received; `onModel` gets the model message_start reports.
   */
  messagesStream(body: Record<string, unknown>, ctx: ProviderCallContext, onModel?: (model: unknown) => void): AsyncIterable<string>;
}

export interface ProviderAdapter {
  readonly info: ProviderInfo;
  readonly native?: NativeMessages;
  chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion>;
  /** Yields chunks as the provider's events arrive; never buffers the whole answer. */
  chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncIterable<ChatCompletionChunk>;
  embeddings?(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse>;
  images?(request: ImagesRequest, ctx: ProviderCallContext): Promise<ImagesResponse>;
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
