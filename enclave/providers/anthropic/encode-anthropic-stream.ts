import type { ChatCompletionChunk, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import type { AnthropicStopReason } from "./anthropic-api-types.js";
import { toAnthropicMessageId } from "./convert-to-anthropic-message.js";
import { toAnthropicStopReason } from "./map-anthropic-stop-reason.js";
import { toAnthropicUsage } from "./map-anthropic-usage.js";

/**
 * Maps OpenAI chat.completion.chunk objects to the Anthropic Messages SSE
 * event sequence, for the `/v1/messages` surface when the routed provider is
 * not Anthropic. `push` returns the events one chunk produces, so the surface
 * writes them before it reads the next chunk; `finish` closes the message
 * when the upstream stream has ended.
 *
 * Sequence produced (what the official SDK's MessageStream accumulates):
 *   message_start (usage.input_tokens 0: OpenAI reports usage only at the end)
 *   per block: content_block_start, content_block_delta*, content_block_stop
 *     text      → {type:"text", text:""} + text_delta
 *     tool call → {type:"tool_use", id, name, input:{}} + input_json_delta
 *   message_delta {stop_reason, stop_sequence:null} with the final usage
 *     (input_tokens included: the SDK overwrites its snapshot when present)
 *   message_stop
 * message_delta waits for `finish` because OpenAI sends usage in a chunk
 * after the one carrying finish_reason; no content waits.
 *
 * Only choice 0 is read. Blocks cannot be reopened in Anthropic's format, so
 * a tool call whose deltas resume after another block started is a
 * malformed upstream (no OpenAI-compatible server is known to interleave).
 */

export type AnthropicSseEventName = "message_start" | "content_block_start" | "content_block_delta" | "content_block_stop" | "message_delta" | "message_stop" | "ping" | "error";

export interface AnthropicSseEvent {
  event: AnthropicSseEventName;
  data: { type: AnthropicSseEventName; [key: string]: unknown };
}

/** `event: X\ndata: JSON\n\n`, the framing Anthropic's API uses. */
export function formatAnthropicSse(event: AnthropicSseEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export function anthropicPingEvent(): AnthropicSseEvent {
  return { event: "ping", data: { type: "ping" } };
}

/** A mid-stream failure, as Anthropic reports it (the SDK raises it as an APIError of that type). */
export function anthropicErrorEvent(type: string, message: string): AnthropicSseEvent {
  return { event: "error", data: { type: "error", error: { type, message } } };
}

export interface OpenAIToAnthropicStreamOptions {
  /** Provider instance name, for error messages. */
  provider: string;
  /** Model reported in message_start; defaults to the first chunk's model. */
  model?: string;
}

type OpenBlock = { kind: "text"; index: number } | { kind: "tool"; index: number; toolIndex: number };

export class OpenAIToAnthropicStreamMapper {
  #options: OpenAIToAnthropicStreamOptions;
  #id = "";
  #started = false;
  #finished = false;
  #nextBlock = 0;
  #open: OpenBlock | null = null;
  #toolBlocks = new Map<number, number>();
  #stopReason: AnthropicStopReason | null = null;
  #usage: Usage | null = null;

  constructor(options: OpenAIToAnthropicStreamOptions) {
    this.#options = options;
  }

  push(chunk: ChatCompletionChunk): AnthropicSseEvent[] {
    if (this.#finished) return [];
    const events: AnthropicSseEvent[] = [];
    if (!this.#started) events.push(this.#start(chunk.id, this.#options.model ?? chunk.model));
    if (chunk.usage) this.#usage = chunk.usage;
    const choice = chunk.choices.find((c) => c.index === 0);
    if (choice === undefined) return events;
    const { delta } = choice;
    if (typeof delta.content === "string" && delta.content !== "") this.#text(delta.content, events);
    if (typeof delta.refusal === "string" && delta.refusal !== "") this.#text(delta.refusal, events);
    for (const call of delta.tool_calls ?? []) this.#tool(call, events);
    if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
      this.#close(events);
      this.#stopReason = toAnthropicStopReason(choice.finish_reason);
    }
    return events;
  }

  /** Call once the upstream stream has ended normally. */
  finish(): AnthropicSseEvent[] {
    if (this.#finished) return [];
    const events: AnthropicSseEvent[] = [];
    if (!this.#started) events.push(this.#start("", this.#options.model ?? ""));
    this.#close(events);
    if (this.#nextBlock === 0) {
      // Clients read content[0]; the non-streamed translation sends an empty text block too.
      events.push({ event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } });
      events.push({ event: "content_block_stop", data: { type: "content_block_stop", index: 0 } });
      this.#nextBlock = 1;
    }
    const usage: Record<string, number> = { output_tokens: this.#usage?.completion_tokens ?? 0 };
    if (this.#usage) {
      const full = toAnthropicUsage(this.#usage);
      usage.input_tokens = full.input_tokens;
      usage.cache_read_input_tokens = full.cache_read_input_tokens ?? 0;
    }
    events.push({
      event: "message_delta",
      data: { type: "message_delta", delta: { stop_reason: this.#stopReason ?? "end_turn", stop_sequence: null }, usage },
    });
    events.push({ event: "message_stop", data: { type: "message_stop" } });
    this.#finished = true;
    return events;
  }

  #start(chunkId: string, model: string): AnthropicSseEvent {
    this.#started = true;
    this.#id = toAnthropicMessageId(chunkId);
    return {
      event: "message_start",
      data: {
        type: "message_start",
        message: {
          id: this.#id,
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 0, output_tokens: 0 },
        },
      },
    };
  }

  #close(events: AnthropicSseEvent[]): void {
    if (this.#open === null) return;
    events.push({ event: "content_block_stop", data: { type: "content_block_stop", index: this.#open.index } });
    this.#open = null;
  }

  #text(text: string, events: AnthropicSseEvent[]): void {
    if (this.#open?.kind !== "text") {
      this.#close(events);
      this.#open = { kind: "text", index: this.#nextBlock++ };
      events.push({
        event: "content_block_start",
        data: { type: "content_block_start", index: this.#open.index, content_block: { type: "text", text: "" } },
      });
    }
    events.push({
      event: "content_block_delta",
      data: { type: "content_block_delta", index: this.#open.index, delta: { type: "text_delta", text } },
    });
  }

  #tool(call: NonNullable<ChatCompletionChunk["choices"][number]["delta"]["tool_calls"]>[number], events: AnthropicSseEvent[]): void {
    const toolIndex = typeof call.index === "number" ? call.index : 0;
    const known = this.#toolBlocks.get(toolIndex);
    let index: number;
    if (known === undefined) {
      this.#close(events);
      index = this.#nextBlock++;
      this.#toolBlocks.set(toolIndex, index);
      this.#open = { kind: "tool", index, toolIndex };
      events.push({
        event: "content_block_start",
        data: {
          type: "content_block_start",
          index,
          content_block: {
            type: "tool_use",
            id: call.id ?? `toolu_${this.#id.replace(/^msg_/, "")}_${toolIndex}`,
            name: call.function?.name ?? "",
            input: {},
          },
        },
      });
    } else if (this.#open?.kind === "tool" && this.#open.index === known) {
      index = known;
    } else {
      throw new UpstreamError("malformed", `${this.#options.provider}: tool call deltas interleaved with other content`);
    }
    const args = call.function?.arguments;
    if (typeof args === "string" && args !== "") {
      events.push({
        event: "content_block_delta",
        data: { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: args } },
      });
    }
  }
}
