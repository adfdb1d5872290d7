import type { ChatCompletionChunk, FinishReason, ToolCall, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import { functionCallPart, geminiFinishReason, geminiResponseId, geminiUsageMetadata } from "./convert-to-gemini-response.js";

/**
 * Canonical chunks → the events of Gemini's `streamGenerateContent?alt=sse`,
 * for a Gemini client on a route whose provider does not speak Gemini. The
 * inverse of map-gemini-stream.ts.
 *
 * One Gemini event per canonical text delta, as soon as it arrives. Tool
 * calls arrive in pieces, but Gemini sends a functionCall whole, so their
 * arguments are gathered and the calls go out in the last event. That last
 * event carries every candidate's finishReason and the usageMetadata (the
 * canonical usage chunk comes after the finish chunks): a client that saw a
 * finishReason saw the whole answer (attestation/client/stream-terminal.ts
 * holds that event until the receipt verifies). A canonical stream that ends
 * before every started choice finished is malformed, never a short success.
 *
 * Events are written `data: <json>\r\n\r\n`, as Google frames them.
 */
export function formatGeminiSse(event: unknown): string {
  return `data: ${JSON.stringify(event)}\r\n\r\n`;
}

interface ChoiceState {
  calls: Map<number, { id: string; name: string; arguments: string }>;
  finish: FinishReason | undefined;
}

export class CanonicalToGeminiStreamMapper {
  private readonly choices = new Map<number, ChoiceState>();
  private usage: Usage | undefined;
  private responseId: string | undefined;
  private modelVersion: string;
  private ordinal = 0;

  constructor(private readonly options: { provider: string; model: string }) {
    this.modelVersion = options.model;
  }

  /** The events this chunk produces now (text deltas); tool calls and the finish wait for `finish`. */
  push(chunk: ChatCompletionChunk): unknown[] {
    this.responseId ??= typeof chunk.id === "string" ? geminiResponseId(chunk.id) : undefined;
    if (typeof chunk.model === "string" && chunk.model !== "") this.modelVersion = chunk.model;
    if (chunk.usage) this.usage = chunk.usage;
    const events: unknown[] = [];
    for (const choice of chunk.choices ?? []) {
      const state = this.state(choice.index);
      const text = choice.delta?.content;
      if (typeof text === "string" && text !== "") {
        events.push(this.event([{ content: { parts: [{ text }], role: "model" }, index: choice.index }]));
      }
      for (const delta of choice.delta?.tool_calls ?? []) {
        let call = state.calls.get(delta.index);
        if (!call) {
          call = { id: delta.id ?? `call_${this.ordinal}`, name: "", arguments: "" };
          this.ordinal++;
          state.calls.set(delta.index, call);
        }
        if (delta.function?.name) call.name += delta.function.name;
        if (delta.function?.arguments) call.arguments += delta.function.arguments;
      }
      if (choice.finish_reason) state.finish = choice.finish_reason;
    }
    return events;
  }

  /** The last event: gathered function calls, every finishReason, usageMetadata. */
  finish(): unknown {
    if (this.choices.size === 0) this.state(0).finish = undefined;
    const candidates = [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, state]) => {
        if (state.finish === undefined) throw new UpstreamError("malformed", `${this.options.provider}: stream ended before its finish`);
        const parts = [...state.calls.values()].map((call) => {
          const toolCall: ToolCall = { id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } };
          return functionCallPart(toolCall, this.options.provider);
        });
        return { content: { parts: parts.length > 0 ? parts : [{ text: "" }], role: "model" }, finishReason: geminiFinishReason(state.finish), index };
      });
    const event = this.event(candidates) as Record<string, unknown>;
    const usageMetadata = geminiUsageMetadata(this.usage);
    return usageMetadata ? { candidates: event.candidates, usageMetadata, modelVersion: event.modelVersion, responseId: event.responseId } : event;
  }

  private state(index: number): ChoiceState {
    let state = this.choices.get(index);
    if (!state) {
      state = { calls: new Map(), finish: undefined };
      this.choices.set(index, state);
    }
    return state;
  }

  private event(candidates: unknown[]): unknown {
    return { candidates, modelVersion: this.modelVersion, ...(this.responseId !== undefined && { responseId: this.responseId }) };
  }
}
