import type { Message } from "@smithy/eventstream-codec";
import type { ChatCompletionChunk, FinishReason, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import { mapStopReason } from "./map-bedrock-stop-reason.js";
import { mapUsage } from "./map-bedrock-usage.js";
import { headerString } from "./read-eventstream.js";

/**
 * Maps ConverseStream's events (each an event-stream message with
 * `:event-type` and a JSON payload) to OpenAI chunks, one event at a time:
 *  - messageStart       → the first chunk, `role: "assistant"`
 *  - contentBlockStart  → a toolUse start: one `tool_calls` delta with id and name
 *  - contentBlockDelta  → text: a `content` delta; toolUse.input: an arguments delta
 *  - contentBlockStop   → nothing
 *  - messageStop        → a chunk with the finish reason
 *  - metadata           → usage (emitted by `finish` when include_usage was asked)
 * An exception message (`:message-type: exception`, e.g. throttlingException
 * mid-stream) becomes an UpstreamError with the status Bedrock gives that
 * exception, and never its message (it may quote the prompt). A stream that
 * ends before messageStop was cut off and is malformed.
 */
export interface ConverseStreamMapperOptions {
  id: string;
  created: number;
  model: string;
  includeUsage: boolean;
  provider: string;
}

/** ConverseStream's exception members and their HTTP status (Bedrock API Reference, ConverseStream "Errors"). */
const EXCEPTION_STATUS: Record<string, number> = {
  throttlingException: 429,
  validationException: 400,
  modelStreamErrorException: 424,
  internalServerException: 500,
  serviceUnavailableException: 503,
};

type Delta = ChatCompletionChunk["choices"][number]["delta"];

export function createConverseStreamMapper(options: ConverseStreamMapperOptions) {
  let roleSent = false;
  let stopped = false;
  let usage: Usage | undefined;
  const toolIndex = new Map<number, number>();

  const chunk = (delta: Delta, finishReason: FinishReason): ChatCompletionChunk => {
    // The first chunk of the answer carries the role, whichever event produced it.
    const withRole: Delta = roleSent ? delta : { role: "assistant", ...delta };
    roleSent = true;
    return {
      id: options.id,
      object: "chat.completion.chunk",
      created: options.created,
      model: options.model,
      choices: [{ index: 0, delta: withRole, finish_reason: finishReason, logprobs: null }],
    };
  };
  const malformed = (what: string) => new UpstreamError("malformed", `${options.provider}: ${what}`);

  return {
    push(message: Message): ChatCompletionChunk[] {
      const type = headerString(message, ":message-type");
      if (type === "exception") {
        const name = headerString(message, ":exception-type") ?? "";
        const status = EXCEPTION_STATUS[name] ?? 502;
        return fail(new UpstreamError("status", `${options.provider}: stream failed with ${name || "an exception"} (HTTP ${status})`, status));
      }
      if (type === "error") return fail(new UpstreamError("status", `${options.provider}: stream failed (${(headerString(message, ":error-code") ?? "error").slice(0, 64)})`, 502));
      if (type !== "event") throw malformed("event stream message has no event type");
      const event = headerString(message, ":event-type");
      let payload: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString("utf8"));
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
        payload = parsed as Record<string, unknown>;
      } catch {
        throw malformed(`${event ?? "event"} payload is not a JSON object`);
      }
      if (stopped && event !== "metadata") throw malformed(`${event} after messageStop`);
      switch (event) {
        case "messageStart":
          return roleSent ? [] : [chunk({ content: "" }, null)];
        case "contentBlockStart": {
          const start = payload.start as Record<string, unknown> | undefined;
          const tool = start?.toolUse as Record<string, unknown> | undefined;
          if (tool === undefined) return [];
          const block = payload.contentBlockIndex;
          if (typeof block !== "number" || typeof tool.toolUseId !== "string" || typeof tool.name !== "string") throw malformed("contentBlockStart.toolUse is incomplete");
          const index = toolIndex.size;
          toolIndex.set(block, index);
          return [chunk({ tool_calls: [{ index, id: tool.toolUseId, type: "function", function: { name: tool.name, arguments: "" } }] }, null)];
        }
        case "contentBlockDelta": {
          const delta = payload.delta as Record<string, unknown> | undefined;
          if (typeof delta !== "object" || delta === null) throw malformed("contentBlockDelta.delta is not an object");
          if (typeof delta.text === "string") return delta.text === "" ? [] : [chunk({ content: delta.text }, null)];
          const tool = delta.toolUse as Record<string, unknown> | undefined;
          if (tool !== undefined) {
            const index = toolIndex.get(payload.contentBlockIndex as number);
            if (index === undefined || typeof tool.input !== "string") throw malformed("contentBlockDelta.toolUse belongs to no started tool block");
            return [chunk({ tool_calls: [{ index, function: { arguments: tool.input } }] }, null)];
          }
          return []; // reasoningContent, citations: not part of the OpenAI chunk
        }
        case "contentBlockStop":
          return [];
        case "messageStop":
          stopped = true;
          return [chunk(roleSent ? {} : { content: "" }, mapStopReason(payload.stopReason, toolIndex.size > 0))];
        case "metadata":
          if (payload.usage !== undefined) usage = mapUsage(payload.usage);
          return [];
        default:
          return []; // an event type added later carries nothing the OpenAI chunk has
      }
    },

    /** Call once the upstream stream has ended cleanly. */
    finish(): ChatCompletionChunk[] {
      if (!stopped) throw malformed("stream ended before messageStop");
      if (!options.includeUsage) return [];
      return [
        {
          id: options.id,
          object: "chat.completion.chunk",
          created: options.created,
          model: options.model,
          choices: [],
          usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        },
      ];
    },
  };

  function fail(err: UpstreamError): never {
    throw err;
  }
}
