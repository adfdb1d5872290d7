import type { ChatCompletionChunk, FinishReason, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import { toOpenAIFinishReason } from "./map-anthropic-stop-reason.js";
import { toOpenAIUsage } from "./map-anthropic-usage.js";

/**
 * Maps Anthropic Messages stream events (the parsed `data` of each SSE event)
 * to OpenAI chat.completion.chunk objects, one event at a time: `push`
 * returns the chunks that event produces, so the caller yields them before
 * it reads the next event. Nothing is held back.
 *
 * Event order (Anthropic "Streaming Messages"): message_start, then per
 * content block content_block_start / content_block_delta* /
 * content_block_stop, then message_delta (stop_reason, cumulative usage) and
 * message_stop; `ping` may come anywhere and an `error` event may replace the
 * rest. Unknown event types are ignored (Anthropic may add them); unknown
 * block types (thinking, server tools) are skipped with their deltas.
 *
 * OpenAI side: the first chunk carries `role:"assistant"`; tool_use blocks
 * become `tool_calls` deltas whose `index` counts tool blocks only; a tool
 * whose input streamed empty gets arguments "{}" (what OpenAI sends for a
 * tool without parameters) so clients can JSON.parse it; the finish_reason
 * chunk comes from message_delta; the usage chunk (`choices: []`) is emitted
 * at message_stop only when the request set stream_options.include_usage.
 */

export interface AnthropicStreamMapperOptions {
  /** Provider instance name, for error messages. */
  provider: string;
  /** stream_options.include_usage from the client's request. */
  includeUsage: boolean;
  now: () => Date;
}

type BlockState = { kind: "text" } | { kind: "tool"; toolIndex: number; sawInput: boolean } | { kind: "skip" };

/**
 * HTTP status an `error` stream event stands for. overloaded_error is what
 * Anthropic answers with HTTP 529 before a stream starts, so it keeps 529
 * (a retryable 5xx) and a mid-stream overload is classified like one at
 * connect time; rate_limit_error is 429; anything else is 502 (the upstream
 * failed after accepting the request).
 */
export function streamErrorStatus(errorType: string | undefined): number {
  switch (errorType) {
    case "overloaded_error":
      return 529;
    case "rate_limit_error":
      return 429;
    default:
      return 502;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Error types are short identifiers; anything else is not echoed. */
function safeErrorType(value: unknown): string | undefined {
  return typeof value === "string" && /^[a-z_]{1,64}$/.test(value) ? value : undefined;
}

export class AnthropicStreamMapper {
  #options: AnthropicStreamMapperOptions;
  #id = "";
  #model = "";
  #created = 0;
  #started = false;
  #stopped = false;
  #finishSent = false;
  #blocks = new Map<number, BlockState>();
  #nextToolIndex = 0;
  #usage: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } = {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };

  constructor(options: AnthropicStreamMapperOptions) {
    this.#options = options;
  }

  /** True once message_stop has been seen: the answer is complete. */
  get done(): boolean {
    return this.#stopped;
  }

  /** Usage so far (final after message_stop), in OpenAI terms. */
  get usage(): Usage {
    return toOpenAIUsage(this.#usage);
  }

  push(event: unknown): ChatCompletionChunk[] {
    if (!isRecord(event) || typeof event.type !== "string") throw this.#malformed("stream event has no type");
    if (event.type === "error") throw this.#errorEvent(event);
    if (event.type === "ping") return [];
    if (this.#stopped) return [];
    if (!this.#started && event.type !== "message_start") {
      if (isKnownEvent(event.type)) throw this.#malformed(`stream event ${event.type} before message_start`);
      return [];
    }
    switch (event.type) {
      case "message_start":
        return this.#messageStart(event);
      case "content_block_start":
        return this.#blockStart(event);
      case "content_block_delta":
        return this.#blockDelta(event);
      case "content_block_stop":
        return this.#blockStop(event);
      case "message_delta":
        return this.#messageDelta(event);
      case "message_stop":
        return this.#messageStop();
      default:
        return [];
    }
  }

  /** The upstream body ended: without message_stop the answer is truncated. */
  end(): void {
    if (!this.#stopped) throw this.#malformed("stream ended before message_stop");
  }

  #malformed(what: string): UpstreamError {
    return new UpstreamError("malformed", `${this.#options.provider}: ${what}`);
  }

  #errorEvent(event: Record<string, unknown>): UpstreamError {
    const type = safeErrorType(isRecord(event.error) ? event.error.type : undefined);
    // Never the upstream message: it may quote the prompt.
    return new UpstreamError("status", `${this.#options.provider}: stream error event${type ? ` (${type})` : ""}`, streamErrorStatus(type));
  }

  #chunk(delta: ChatCompletionChunk["choices"][number]["delta"], finishReason: FinishReason = null): ChatCompletionChunk {
    return {
      id: this.#id,
      object: "chat.completion.chunk",
      created: this.#created,
      model: this.#model,
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    };
  }

  #index(event: Record<string, unknown>): number {
    const index = event.index;
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) throw this.#malformed(`${String(event.type)} without a valid index`);
    return index;
  }

  #readUsage(usage: unknown): void {
    if (!isRecord(usage)) return;
    // message_delta counters are cumulative totals: overwrite, never add.
    for (const key of ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"] as const) {
      const value = usage[key];
      if (typeof value === "number" && Number.isFinite(value) && value >= 0) this.#usage[key] = value;
    }
  }

  #messageStart(event: Record<string, unknown>): ChatCompletionChunk[] {
    if (this.#started) throw this.#malformed("second message_start");
    const message = event.message;
    if (!isRecord(message) || typeof message.id !== "string") throw this.#malformed("message_start without a message id");
    this.#started = true;
    this.#id = message.id;
    this.#model = typeof message.model === "string" ? message.model : "";
    this.#created = Math.floor(this.#options.now().getTime() / 1000);
    this.#readUsage(message.usage);
    return [this.#chunk({ role: "assistant", content: "" })];
  }

  #blockStart(event: Record<string, unknown>): ChatCompletionChunk[] {
    const index = this.#index(event);
    if (this.#blocks.has(index)) throw this.#malformed("content_block_start for an index already started");
    const block = event.content_block;
    if (!isRecord(block)) throw this.#malformed("content_block_start without a content_block");
    if (block.type === "text") {
      this.#blocks.set(index, { kind: "text" });
      // Always "" in practice; forward anything the start already holds.
      return typeof block.text === "string" && block.text !== "" ? [this.#chunk({ content: block.text })] : [];
    }
    if (block.type === "tool_use") {
      if (typeof block.id !== "string" || typeof block.name !== "string") throw this.#malformed("tool_use block without id or name");
      const toolIndex = this.#nextToolIndex++;
      const preset = isRecord(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : "";
      this.#blocks.set(index, { kind: "tool", toolIndex, sawInput: preset !== "" });
      return [
        this.#chunk({
          tool_calls: [{ index: toolIndex, id: block.id, type: "function", function: { name: block.name, arguments: preset } }],
        }),
      ];
    }
    this.#blocks.set(index, { kind: "skip" });
    return [];
  }

  #blockDelta(event: Record<string, unknown>): ChatCompletionChunk[] {
    const state = this.#blocks.get(this.#index(event));
    if (state === undefined) throw this.#malformed("content_block_delta for a block never started");
    const delta = event.delta;
    if (!isRecord(delta)) throw this.#malformed("content_block_delta without a delta");
    if (state.kind === "text" && delta.type === "text_delta") {
      if (typeof delta.text !== "string") throw this.#malformed("text_delta without text");
      return delta.text === "" ? [] : [this.#chunk({ content: delta.text })];
    }
    if (state.kind === "tool" && delta.type === "input_json_delta") {
      if (typeof delta.partial_json !== "string") throw this.#malformed("input_json_delta without partial_json");
      if (delta.partial_json === "") return [];
      if (delta.partial_json.trim() !== "") state.sawInput = true;
      return [this.#chunk({ tool_calls: [{ index: state.toolIndex, function: { arguments: delta.partial_json } }] })];
    }
    // citations, thinking and signature deltas, and deltas of skipped blocks, have no OpenAI counterpart.
    return [];
  }

  #blockStop(event: Record<string, unknown>): ChatCompletionChunk[] {
    const state = this.#blocks.get(this.#index(event));
    if (state === undefined) throw this.#malformed("content_block_stop for a block never started");
    if (state.kind === "tool" && !state.sawInput) {
      state.sawInput = true;
      return [this.#chunk({ tool_calls: [{ index: state.toolIndex, function: { arguments: "{}" } }] })];
    }
    return [];
  }

  #messageDelta(event: Record<string, unknown>): ChatCompletionChunk[] {
    this.#readUsage(event.usage);
    const delta = isRecord(event.delta) ? event.delta : {};
    const stopReason = typeof delta.stop_reason === "string" ? delta.stop_reason : null;
    if (stopReason === null || this.#finishSent) return [];
    this.#finishSent = true;
    return [this.#chunk({}, toOpenAIFinishReason(stopReason))];
  }

  #messageStop(): ChatCompletionChunk[] {
    this.#stopped = true;
    const chunks: ChatCompletionChunk[] = [];
    // A stream without a stop_reason still ended; OpenAI clients expect a finish_reason.
    if (!this.#finishSent) {
      this.#finishSent = true;
      chunks.push(this.#chunk({}, "stop"));
    }
    if (this.#options.includeUsage) {
      chunks.push({ id: this.#id, object: "chat.completion.chunk", created: this.#created, model: this.#model, choices: [], usage: this.usage });
    }
    return chunks;
  }
}

function isKnownEvent(type: string): boolean {
  return type === "content_block_start" || type === "content_block_delta" || type === "content_block_stop" || type === "message_delta" || type === "message_stop";
}
