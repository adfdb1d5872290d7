import type { ChatCompletionChunk, FinishReason, Usage } from "../../providers/types.js";
import {
  functionCallItem,
  functionItemId,
  messageItem,
  messageItemId,
  outputTextPart,
  responseObject,
  responseStatus,
  responseUsage,
  type ResponseFrame,
} from "./chat-to-response.js";
import type { StreamFailureSource } from "./responses-stream-events.js";

/**
 * Canonical stream chunks → the Responses streaming events, in the order
 * OpenAI sends them (openai-node ResponseStreamEvent; lib/responses/
 * ResponseStream.ts and ResponseAccumulator.ts rebuild the Response from
 * exactly these):
 *
 *   response.created, response.in_progress,
 *   per text answer: output_item.added (message), content_part.added,
 *     output_text.delta…, output_text.done, content_part.done, output_item.done;
 *   per tool call: output_item.added (function_call), function_call_arguments.delta…,
 *     function_call_arguments.done, output_item.done;
 *   response.completed (usage), or response.incomplete (max_output_tokens, content_filter).
 *
 * Every event has a `sequence_number`, counted from 0. One output item is
 * open at a time: text closes when a tool call starts, a tool call when
 * the next one starts, everything at the end.
 */

type Json = Record<string, unknown>;

interface OpenText {
  kind: "text";
  outputIndex: number;
  id: string;
  text: string;
}
interface OpenCall {
  kind: "call";
  outputIndex: number;
  /** The chunk's tool_calls[].index this item is for. */
  chunkIndex: number;
  id: string;
  callId: string;
  name: string;
  arguments: string;
}

export class ChatStreamToResponses implements StreamFailureSource {
  #sequence = 0;
  #started = false;
  #open: OpenText | OpenCall | undefined;
  #output: Json[] = [];
  #texts = 0;
  #calls = 0;
  #finish: FinishReason | undefined;
  #usage: Usage | undefined;

  constructor(private readonly frame: ResponseFrame) {}

  /** The events one chunk adds. */
  push(chunk: ChatCompletionChunk): Json[] {
    const events = this.#start();
    if (chunk.usage) this.#usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) return events;
    const delta = choice.delta;
    if (typeof delta.content === "string" && delta.content !== "") events.push(...this.#text(delta.content));
    for (const call of delta.tool_calls ?? []) events.push(...this.#toolCall(call));
    if (choice.finish_reason) this.#finish = choice.finish_reason;
    return events;
  }

  /** The last events: close what is open, then response.completed or response.incomplete. */
  finish(): Json[] {
    const events = [...this.#start(), ...this.#close()];
    // An answer with no output at all is one empty message, as OpenAI sends.
    if (this.#output.length === 0) {
      const id = messageItemId(this.frame, this.#texts++);
      events.push(this.#event("response.output_item.added", { output_index: 0, item: messageItem(id, "in_progress", undefined) }));
      this.#open = { kind: "text", outputIndex: 0, id, text: "" };
      events.push(this.#event("response.content_part.added", { item_id: id, output_index: 0, content_index: 0, part: outputTextPart("") }));
      events.push(...this.#close());
    }
    const { status, incomplete_details } = responseStatus(this.#finish);
    const response = responseObject(this.frame, status, this.#output, { usage: responseUsage(this.#usage), incomplete_details });
    events.push(this.#event(status === "completed" ? "response.completed" : "response.incomplete", { response }));
    return events;
  }

  nextSequence(): number {
    return this.#sequence++;
  }

  failedResponse(error: { code: string; message: string }): Json {
    return responseObject(this.frame, "failed", this.#output, { usage: responseUsage(this.#usage), error });
  }

  #event(type: string, fields: Json): Json {
    return { type, sequence_number: this.#sequence++, ...fields };
  }

  #start(): Json[] {
    if (this.#started) return [];
    this.#started = true;
    const response = responseObject(this.frame, "in_progress", []);
    return [this.#event("response.created", { response }), this.#event("response.in_progress", { response })];
  }

  #text(delta: string): Json[] {
    const events: Json[] = [];
    if (this.#open?.kind !== "text") {
      events.push(...this.#close());
      const outputIndex = this.#output.length;
      const id = messageItemId(this.frame, this.#texts++);
      this.#open = { kind: "text", outputIndex, id, text: "" };
      events.push(this.#event("response.output_item.added", { output_index: outputIndex, item: messageItem(id, "in_progress", undefined) }));
      events.push(this.#event("response.content_part.added", { item_id: id, output_index: outputIndex, content_index: 0, part: outputTextPart("") }));
    }
    const open = this.#open as OpenText;
    open.text += delta;
    events.push(this.#event("response.output_text.delta", { item_id: open.id, output_index: open.outputIndex, content_index: 0, delta, logprobs: [] }));
    return events;
  }

  #toolCall(call: NonNullable<ChatCompletionChunk["choices"][number]["delta"]["tool_calls"]>[number]): Json[] {
    const events: Json[] = [];
    const open = this.#open;
    if (open?.kind !== "call" || open.chunkIndex !== call.index) {
      events.push(...this.#close());
      const outputIndex = this.#output.length;
      const id = functionItemId(this.frame, this.#calls++);
      const started: OpenCall = { kind: "call", outputIndex, chunkIndex: call.index, id, callId: call.id ?? id, name: call.function?.name ?? "", arguments: "" };
      this.#open = started;
      events.push(
        this.#event("response.output_item.added", {
          output_index: outputIndex,
          item: functionCallItem(id, "in_progress", { id: started.callId, name: started.name, arguments: "" }),
        }),
      );
    }
    const current = this.#open as OpenCall;
    const piece = call.function?.arguments ?? "";
    if (piece !== "") {
      current.arguments += piece;
      events.push(this.#event("response.function_call_arguments.delta", { item_id: current.id, output_index: current.outputIndex, delta: piece }));
    }
    return events;
  }

  #close(): Json[] {
    const open = this.#open;
    if (!open) return [];
    this.#open = undefined;
    const at = { item_id: open.id, output_index: open.outputIndex };
    if (open.kind === "text") {
      const item = messageItem(open.id, "completed", open.text);
      this.#output.push(item);
      return [
        this.#event("response.output_text.done", { ...at, content_index: 0, text: open.text, logprobs: [] }),
        this.#event("response.content_part.done", { ...at, content_index: 0, part: outputTextPart(open.text) }),
        this.#event("response.output_item.done", { output_index: open.outputIndex, item }),
      ];
    }
    const item = functionCallItem(open.id, "completed", { id: open.callId, name: open.name, arguments: open.arguments });
    this.#output.push(item);
    return [
      this.#event("response.function_call_arguments.done", { ...at, name: open.name, arguments: open.arguments }),
      this.#event("response.output_item.done", { output_index: open.outputIndex, item }),
    ];
  }
}
