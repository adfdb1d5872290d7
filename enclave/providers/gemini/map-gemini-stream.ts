import type { ChatCompletionChunk, FinishReason, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import { mapFinishReason } from "./map-gemini-finish-reason.js";
import { mapUsage } from "./map-gemini-usage.js";
import { completionId, malformed, promptBlocked, readParts, toolCallId } from "./read-gemini-response.js";

/**
 * Maps the events of `streamGenerateContent?alt=sse` (each one a whole
 * GenerateContentResponse holding only the new parts) to OpenAI chunks, one
 * event at a time: `push` returns the chunks that event produces, at once.
 *
 * Per choice: the first chunk carries `role: "assistant"`; text parts become
 * `content` deltas; each functionCall (Gemini sends it whole, not in pieces)
 * becomes one complete `tool_calls` delta with index, id, name and the full
 * arguments; a candidate's finishReason becomes a separate chunk with an
 * empty delta. usageMetadata is cumulative on Google's stream, so the last
 * one seen is the answer's usage; `finish` emits it as `{choices: [], usage}`
 * only when the client asked for stream_options.include_usage.
 *
 * A stream that ends before every started choice has finished is reported as
 * malformed: the client must not take a cut-off answer for a complete one.
 */
export interface GeminiStreamMapperOptions {
  /** Chunk id when the first event carries no responseId. */
  fallbackId: string;
  created: number;
  model: string;
  includeUsage: boolean;
  /** Provider instance name, for error messages. */
  provider: string;
}

export interface GeminiStreamMapper {
  push(event: unknown): ChatCompletionChunk[];
  /** Call once the upstream stream has ended cleanly. */
  finish(): ChatCompletionChunk[];
}

interface ChoiceState {
  roleSent: boolean;
  toolCalls: number;
  finished: boolean;
}

type Delta = ChatCompletionChunk["choices"][number]["delta"];

export function createGeminiStreamMapper(options: GeminiStreamMapperOptions): GeminiStreamMapper {
  let id: string | undefined;
  let events = 0;
  let ordinal = 0; // tool calls across the whole response, as in the non-streamed mapping
  let usage: Usage | undefined;
  const choices = new Map<number, ChoiceState>();

  const chunk = (index: number, delta: Delta, finishReason: FinishReason): ChatCompletionChunk => ({
    id: id ?? options.fallbackId,
    object: "chat.completion.chunk",
    created: options.created,
    model: options.model,
    choices: [{ index, delta, finish_reason: finishReason, logprobs: null }],
  });

  const stateOf = (index: number): ChoiceState => {
    let state = choices.get(index);
    if (!state) {
      state = { roleSent: false, toolCalls: 0, finished: false };
      choices.set(index, state);
    }
    return state;
  };

  const withRole = (state: ChoiceState, delta: Delta): Delta => {
    if (state.roleSent) return delta;
    state.roleSent = true;
    return { role: "assistant", ...delta };
  };

  return {
    push(event: unknown): ChatCompletionChunk[] {
      if (typeof event !== "object" || event === null || Array.isArray(event)) throw malformed(options.provider);
      const body = event as Record<string, unknown>;
      if (body.error !== undefined) throw streamError(body.error, options.provider);
      events++;
      id ??= completionId(body, options.fallbackId);
      if (body.usageMetadata !== undefined) usage = mapUsage(body.usageMetadata);
      const out: ChatCompletionChunk[] = [];

      if (promptBlocked(body)) {
        const state = stateOf(0);
        if (!state.finished) {
          state.finished = true;
          out.push(chunk(0, withRole(state, { content: "" }), "content_filter"));
        }
        return out;
      }
      if (body.candidates === undefined) return out; // e.g. a usage-only event
      if (!Array.isArray(body.candidates)) throw malformed(options.provider);

      body.candidates.forEach((candidate: unknown, position) => {
        if (typeof candidate !== "object" || candidate === null) throw malformed(options.provider);
        const c = candidate as Record<string, unknown>;
        const index = typeof c.index === "number" ? c.index : position;
        const state = stateOf(index);
        if (state.finished) return; // nothing after a finish reason belongs to the answer
        const { text, calls } = readParts(c.content, options.provider);

        const delta: Delta = {};
        if (text !== "") delta.content = text;
        if (calls.length > 0) {
          delta.tool_calls = calls.map((call) => ({
            index: state.toolCalls++,
            id: toolCallId(call, ordinal++),
            type: "function" as const,
            function: { name: call.name, arguments: call.arguments },
          }));
        }
        if (delta.content !== undefined || delta.tool_calls !== undefined) out.push(chunk(index, withRole(state, delta), null));

        if (typeof c.finishReason === "string") {
          state.finished = true;
          const reason = mapFinishReason(c.finishReason, state.toolCalls > 0);
          out.push(chunk(index, withRole(state, state.roleSent ? {} : { content: "" }), reason));
        }
      });
      return out;
    },

    finish(): ChatCompletionChunk[] {
      if (events === 0) throw new UpstreamError("malformed", `${options.provider}: stream ended without any event`);
      if (choices.size === 0 || [...choices.values()].some((s) => !s.finished)) {
        throw new UpstreamError("malformed", `${options.provider}: stream ended before a finish reason`);
      }
      if (!options.includeUsage) return [];
      return [
        {
          id: id ?? options.fallbackId,
          object: "chat.completion.chunk",
          created: options.created,
          model: options.model,
          choices: [],
          // Zeros when Google sent no usageMetadata at all: the client asked
          // for a usage chunk and OpenAI's contract always delivers one.
          usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        },
      ];
    },
  };
}

/**
 * Google ends a failing stream with an event `{"error": {code, message,
 * status}}` (same shape as its error bodies). Only the numeric code is kept:
 * the message may quote the request.
 */
function streamError(error: unknown, provider: string): UpstreamError {
  const code = typeof error === "object" && error !== null ? (error as Record<string, unknown>).code : undefined;
  const status = typeof code === "number" && Number.isInteger(code) && code >= 400 && code <= 599 ? code : 502;
  return new UpstreamError("status", `${provider}: stream failed with HTTP ${status}`, status);
}
