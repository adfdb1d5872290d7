import { createHash } from "node:crypto";
import { GatewayError } from "../../errors.js";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  ChatRequest,
  EmbeddingsRequest,
  EmbeddingsResponse,
  FinishReason,
  ImagesRequest,
  ImagesResponse,
  ToolCall,
  ToolDefinition,
  Usage,
} from "../canonical/types.js";
import { float32Base64 } from "../shared/float32-base64.js";
import { networkError } from "../shared/upstream-http.js";
import type { ProviderAdapter, ProviderCallContext } from "../types.js";
import { argumentsFromSchema } from "./arguments-from-schema.js";
import { localSpeech, localTranscript } from "./local-audio.js";
import { localImages } from "./local-images.js";
import { localModerations } from "./local-moderations.js";

/**
 * The built-in `local` model. IT IS NOT AN LLM: it understands nothing and
 * generates nothing. It is a deterministic responder whose answers are a
 * pure function of the request (plus the injected clock for ids and
 * `created`), so the whole stack — API surfaces, streaming, receipts, SDK
 * clients, benchmarks — runs offline without any provider key.
 *
 * Behaviour, exactly (tests rely on it):
 *
 * - Text is normalized to single spaces (split on whitespace, joined by " ")
 *   and bounded to {@link LOCAL_ECHO_MAX_CHARS} code points: the "echo".
 *   A message's text is its string content, or its text parts joined by " ".
 * - Chat answer, by the last message:
 *   - tools present, `tool_choice` not "none", last message from the user:
 *     a call of the tool named by `tool_choice`, else of the first tool,
 *     with arguments built from its JSON schema (see {@link argumentsFromSchema});
 *     `content` null, finish_reason "tool_calls". max_tokens does not cut
 *     tool calls. A named tool that is not in `tools` is invalid_request.
 *   - last message a tool result: "local model (not an LLM): the tool returned: <echo of its content>".
 *   - otherwise: "local model (not an LLM): you said: <echo of the last user message>",
 *     or "local model (not an LLM): you said nothing" without user text.
 * - `response_format` json_object: the answer is instead the JSON text
 *   `{"model":"local","not_an_llm":true,"you_said":<echo>}` (or
 *   `"tool_result":<echo>` after a tool result); json_schema: the object
 *   {@link argumentsFromSchema} builds from `json_schema.schema`.
 * - max_tokens / max_completion_tokens (the smaller) bound the answer's
 *   word count: longer answers are cut to that many words, finish_reason
 *   "length"; otherwise "stop". `n`, `temperature`, `stop` … are ignored:
 *   always exactly one choice.
 * - Tokens are whitespace-separated words: prompt_tokens counts the words of
 *   every message's text and of assistant tool-call arguments;
 *   completion_tokens the words of the answer (or of the tool arguments).
 * - ids: "chatcmpl-local-<created>-<n>", tool calls "call_local_<created>_<n>",
 *   with <created> the clock's Unix seconds and <n> a per-adapter counter.
 * - Streaming: a role chunk (`content: ""`, or `null` before a tool call),
 *   then one chunk per word (" word" after the first), or for a tool call a
 *   header chunk (id, name, empty arguments) and the arguments in two or more
 *   pieces; then a chunk with an empty delta and the finish_reason; then,
 *   only with stream_options.include_usage, a chunk with empty `choices` and
 *   `usage` (every earlier chunk then carries `usage: null`, as OpenAI's do).
 *   `chunkDelayMs` waits before every chunk after the first; an aborted
 *   `ctx.signal` ends the stream at once with UpstreamError("aborted")
 *   (or "timeout" when the signal's reason is a TimeoutError).
 * - Embeddings: per input, `dimensions` (default 8, at most 256) values; the
 *   first 8 are SHA-256(UTF-8 input) read as big-endian int32s, further
 *   blocks of 8 are SHA-256(uint32be(k) ‖ input); the vector is L2-normalized
 *   and rounded to float32. Token-array inputs are hashed as their
 *   comma-joined decimal text. encoding_format "base64" gives the float32
 *   little-endian bytes in base64, as OpenAI does.
 * - Moderations, audio transcriptions / translations and speech: see
 *   local-moderations.ts and local-audio.ts. Legacy completions are
 *   translated to chat by the surface, so they answer like chat.
 * - Images: per image an 8×8 RGB PNG (stored-deflate IDAT, so the bytes do
 *   not depend on the zlib build) whose pixels are SHA-256 of
 *   (prompt ‖ 0x00 ‖ image index), counter-extended; `b64_json` by default,
 *   a `data:image/png;base64,…` URL for response_format "url". `size` is
 *   ignored; `n` is 1…10.
 */
export interface LocalAdapterOptions {
  /** Instance name; "local" by default. */
  name?: string;
  /** Delay before each streamed chunk after the first, to exercise streaming paths; 0 by default. */
  chunkDelayMs?: number;
}

/** For the model list: what `local` is, and that it is not a language model. */
export const LOCAL_MODEL_DESCRIPTION =
  "Built-in deterministic responder, NOT an LLM: echoes the request (and calls tools with schema-derived arguments) so the gateway works offline without provider keys.";

export const LOCAL_REPLY_PREFIX = "local model (not an LLM):";
export const LOCAL_ECHO_MAX_CHARS = 256;
export const LOCAL_EMBEDDING_DIMENSIONS = 8;
const MAX_EMBEDDING_DIMENSIONS = 256;
const MAX_EMBEDDING_INPUTS = 2048;

export function createLocalAdapter(options: LocalAdapterOptions = {}): ProviderAdapter {
  const name = options.name ?? "local";
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  if (!Number.isFinite(chunkDelayMs) || chunkDelayMs < 0) throw new TypeError('"chunkDelayMs" expected a non-negative number');
  let counter = 0;

  function plan(request: ChatRequest, ctx: ProviderCallContext): Plan {
    checkAlive(ctx, name);
    const created = Math.floor(ctx.now().getTime() / 1000);
    const n = ++counter;
    return planAnswer(request, { id: `chatcmpl-local-${created}-${n}`, callId: `call_local_${created}_${n}`, created, model: ctx.upstreamModel });
  }

  return {
    info: { name, kind: "local", baseUrl: "local://" },

    async chat(request: ChatRequest, ctx: ProviderCallContext): Promise<ChatCompletion> {
      const p = plan(request, ctx);
      return {
        id: p.id,
        object: "chat.completion",
        created: p.created,
        model: p.model,
        choices: [
          {
            index: 0,
            message: p.toolCall ? { role: "assistant", content: null, tool_calls: [p.toolCall], refusal: null } : { role: "assistant", content: p.content, refusal: null },
            logprobs: null,
            finish_reason: p.finishReason,
          },
        ],
        usage: p.usage,
      };
    },

    chatStream(request: ChatRequest, ctx: ProviderCallContext): AsyncIterable<ChatCompletionChunk> {
      return streamAnswer(request, ctx);
    },

    async embeddings(request: EmbeddingsRequest, ctx: ProviderCallContext): Promise<EmbeddingsResponse> {
      checkAlive(ctx, name);
      return localEmbeddings(request, ctx.upstreamModel);
    },

    async images(request: ImagesRequest, ctx: ProviderCallContext): Promise<ImagesResponse> {
      checkAlive(ctx, name);
      return localImages(request, Math.floor(ctx.now().getTime() / 1000));
    },

    async moderations(request, ctx) {
      checkAlive(ctx, name);
      return localModerations(request, ctx.upstreamModel, Math.floor(ctx.now().getTime() / 1000));
    },

    async audio(upload, ctx) {
      checkAlive(ctx, name);
      return localTranscript(upload);
    },

    async speech(request, ctx) {
      checkAlive(ctx, name);
      return localSpeech(request);
    },
  };

  async function* streamAnswer(request: ChatRequest, ctx: ProviderCallContext): AsyncGenerator<ChatCompletionChunk> {
    const p = plan(request, ctx);
    const includeUsage = request.stream_options?.include_usage === true;
    const chunk = (delta: ChatCompletionChunk["choices"][number]["delta"], finish: FinishReason): ChatCompletionChunk => ({
      id: p.id,
      object: "chat.completion.chunk",
      created: p.created,
      model: p.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });

    const chunks: ChatCompletionChunk[] = [];
    if (p.toolCall) {
      const call = p.toolCall;
      chunks.push(chunk({ role: "assistant", content: null }, null));
      chunks.push(chunk({ tool_calls: [{ index: 0, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] }, null));
      for (const piece of splitPieces(call.function.arguments)) {
        chunks.push(chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }, null));
      }
    } else {
      chunks.push(chunk({ role: "assistant", content: "" }, null));
      p.content.split(" ").forEach((word, i) => {
        if (word !== "") chunks.push(chunk({ content: i === 0 ? word : ` ${word}` }, null));
      });
    }
    chunks.push(chunk({}, p.finishReason));
    if (includeUsage) {
      chunks.push({ id: p.id, object: "chat.completion.chunk", created: p.created, model: p.model, choices: [], usage: p.usage });
    }

    for (let i = 0; i < chunks.length; i++) {
      if (i > 0 && chunkDelayMs > 0) await sleep(chunkDelayMs, ctx, name);
      checkAlive(ctx, name);
      yield chunks[i]!;
    }
  }
}

// ─── Chat planning ───────────────────────────────────────────────────────────

interface Plan {
  id: string;
  created: number;
  model: string;
  content: string;
  toolCall: ToolCall | undefined;
  finishReason: FinishReason;
  usage: Usage;
}

function planAnswer(request: ChatRequest, meta: { id: string; callId: string; created: number; model: string }): Plan {
  if (typeof request !== "object" || request === null) throw invalid("request must be an object");
  const messages = request.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw invalid("messages must be a non-empty array");
  for (const message of messages) {
    if (typeof message !== "object" || message === null || typeof (message as { role?: unknown }).role !== "string") {
      throw invalid("every message needs a role");
    }
  }
  const tools = request.tools;
  if (tools !== undefined && !Array.isArray(tools)) throw invalid("tools must be an array");
  const limit = wordLimit(request);
  const promptTokens = messages.reduce((sum, m) => sum + countWords(messageText(m)) + countWords(toolCallText(m)), 0);

  const last = messages[messages.length - 1]!;
  const userText = echo(lastUserText(messages));
  const base = { id: meta.id, created: meta.created, model: meta.model };

  const tool = last.role === "user" && tools !== undefined && tools.length > 0 ? chooseTool(tools, request.tool_choice) : undefined;
  if (tool) {
    const args = JSON.stringify(argumentsFromSchema(tool.function.parameters, userText));
    const completionTokens = countWords(args);
    return {
      ...base,
      content: "",
      toolCall: { id: meta.callId, type: "function", function: { name: tool.function.name, arguments: args } },
      finishReason: "tool_calls",
      usage: usage(promptTokens, completionTokens),
    };
  }

  const afterTool = last.role === "tool";
  const said = afterTool ? echo(messageText(last)) : userText;
  let content: string;
  const format = request.response_format;
  if (format?.type === "json_object") {
    content = JSON.stringify(afterTool ? { model: "local", not_an_llm: true, tool_result: said } : { model: "local", not_an_llm: true, you_said: said });
  } else if (format?.type === "json_schema") {
    const schema = (format.json_schema as { schema?: unknown } | undefined)?.schema;
    content = JSON.stringify(argumentsFromSchema(schema, said));
  } else if (afterTool) {
    content = `${LOCAL_REPLY_PREFIX} the tool returned: ${said}`.trimEnd();
  } else {
    content = said === "" ? `${LOCAL_REPLY_PREFIX} you said nothing` : `${LOCAL_REPLY_PREFIX} you said: ${said}`;
  }

  let words = content.split(" ").filter((w) => w !== "");
  let finishReason: FinishReason = "stop";
  if (limit !== undefined && words.length > limit) {
    words = words.slice(0, limit);
    finishReason = "length";
  }
  content = words.join(" ");
  return { ...base, content, toolCall: undefined, finishReason, usage: usage(promptTokens, words.length) };
}

function chooseTool(tools: ToolDefinition[], choice: ChatRequest["tool_choice"]): ToolDefinition | undefined {
  for (const tool of tools) {
    if (typeof tool !== "object" || tool === null || typeof tool.function?.name !== "string") throw invalid("every tool needs function.name");
  }
  if (choice === "none") return undefined;
  if (choice === undefined || choice === "auto" || choice === "required") return tools[0];
  if (typeof choice === "object" && choice !== null && typeof choice.function?.name === "string") {
    const named = tools.find((t) => t.function.name === choice.function.name);
    if (!named) throw invalid("tool_choice names a tool that is not in tools");
    return named;
  }
  throw invalid("tool_choice is not understood");
}

function wordLimit(request: ChatRequest): number | undefined {
  let limit: number | undefined;
  for (const key of ["max_tokens", "max_completion_tokens"] as const) {
    const value = request[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw invalid(`${key} must be a positive integer`);
    limit = limit === undefined ? value : Math.min(limit, value);
  }
  return limit;
}

function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

// ─── Text helpers ────────────────────────────────────────────────────────────

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((part): part is { type: "text"; text: string } => typeof part === "object" && part !== null && part.type === "text" && typeof part.text === "string")
    .map((part) => part.text)
    .join(" ");
}

function messageText(message: ChatMessage): string {
  return contentText((message as { content?: unknown }).content);
}

function toolCallText(message: ChatMessage): string {
  if (message.role !== "assistant" || !Array.isArray(message.tool_calls)) return "";
  return message.tool_calls.map((call) => (typeof call?.function?.arguments === "string" ? call.function.arguments : "")).join(" ");
}

function lastUserText(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === "user") return messageText(m);
  }
  return "";
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== "");
}

function countWords(text: string): number {
  return words(text).length;
}

/** Whitespace-normalized and bounded to LOCAL_ECHO_MAX_CHARS code points (no trailing space after the cut). */
function echo(text: string): string {
  const normalized = words(text).join(" ");
  const points = Array.from(normalized);
  if (points.length <= LOCAL_ECHO_MAX_CHARS) return normalized;
  return points.slice(0, LOCAL_ECHO_MAX_CHARS).join("").trimEnd();
}

/** At least two pieces (arguments are never shorter than "{}"), at most 16 characters each. */
function splitPieces(text: string): string[] {
  const points = Array.from(text);
  const size = Math.max(1, Math.min(16, Math.ceil(points.length / 2)));
  const pieces: string[] = [];
  for (let i = 0; i < points.length; i += size) pieces.push(points.slice(i, i + size).join(""));
  return pieces;
}

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

// ─── Abort-aware timing ──────────────────────────────────────────────────────

function checkAlive(ctx: ProviderCallContext, name: string): void {
  if (ctx.signal.aborted) throw networkError(ctx, name, ctx.signal.reason);
}

function sleep(ms: number, ctx: ProviderCallContext, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ctx.signal.aborted) return reject(networkError(ctx, name, ctx.signal.reason));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(networkError(ctx, name, ctx.signal.reason));
    };
    const timer = setTimeout(() => {
      ctx.signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
  });
}

// ─── Embeddings ──────────────────────────────────────────────────────────────

function localEmbeddings(request: EmbeddingsRequest, model: string): EmbeddingsResponse {
  if (typeof request !== "object" || request === null) throw invalid("request must be an object");
  const dims = request.dimensions ?? LOCAL_EMBEDDING_DIMENSIONS;
  if (!Number.isInteger(dims) || dims < 1 || dims > MAX_EMBEDDING_DIMENSIONS) throw invalid(`dimensions must be an integer in 1…${MAX_EMBEDDING_DIMENSIONS}`);
  const format = request.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") throw invalid('encoding_format must be "float" or "base64"');

  const inputs = embeddingInputs(request.input);
  let tokens = 0;
  const data = inputs.map((input, index) => {
    tokens += typeof input === "string" ? countWords(input) : input.length;
    const bytes = Buffer.from(typeof input === "string" ? input : input.join(","), "utf8");
    const vector = embedBytes(bytes, dims);
    const embedding = format === "base64" ? float32Base64(vector) : vector;
    return { object: "embedding" as const, index, embedding };
  });
  return { object: "list", data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

function embeddingInputs(input: unknown): (string | number[])[] {
  const isTokens = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t) && t >= 0);
  let list: (string | number[])[];
  if (typeof input === "string") list = [input];
  else if (isTokens(input)) list = [input];
  else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === "string" || isTokens(x))) list = input as (string | number[])[];
  else throw invalid("input must be a string, an array of strings, or token arrays");
  if (list.length > MAX_EMBEDDING_INPUTS) throw invalid(`input holds more than ${MAX_EMBEDDING_INPUTS} items`);
  return list;
}

/** See the module comment: SHA-256 blocks read as int32s, L2-normalized, rounded to float32. */
export function embedBytes(bytes: Uint8Array, dims: number): number[] {
  const raw: number[] = [];
  for (let block = 0; raw.length < dims; block++) {
    const hash = createHash("sha256");
    if (block > 0) {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(block);
      hash.update(prefix);
    }
    const digest = hash.update(bytes).digest();
    for (let i = 0; i < 32 && raw.length < dims; i += 4) raw.push(digest.readInt32BE(i) / 2 ** 31);
  }
  const norm = Math.sqrt(raw.reduce((sum, x) => sum + x * x, 0)) || 1;
  return raw.map((x) => Math.fround(x / norm));
}
