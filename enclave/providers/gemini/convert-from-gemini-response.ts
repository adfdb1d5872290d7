import type { ChatCompletion, ToolCall } from "../canonical/types.js";
import { mapFinishReason } from "./map-gemini-finish-reason.js";
import { mapUsage } from "./map-gemini-usage.js";
import { completionId, malformed, promptBlocked, readParts, toolCallId } from "./read-gemini-response.js";

/**
 * Gemini GenerateContentResponse (unknown JSON) → canonical ChatCompletion;
 * a body that is not one is UpstreamError("malformed"), and no message names
 * completion text.
 */

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface CompletionMeta {
  /** Used when the response carries no responseId. */
  fallbackId: string;
  created: number;
  model: string;
  provider: string;
}

export function fromGeminiResponse(body: unknown, meta: CompletionMeta): ChatCompletion {
  if (!isRecord(body)) throw malformed(meta.provider);
  const completion: ChatCompletion = {
    id: completionId(body, meta.fallbackId),
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [],
  };
  if (promptBlocked(body)) {
    completion.choices.push({ index: 0, message: { role: "assistant", content: "" }, finish_reason: "content_filter", logprobs: null });
  } else {
    if (!Array.isArray(body.candidates) || body.candidates.length === 0) throw malformed(meta.provider);
    let ordinal = 0;
    body.candidates.forEach((candidate: unknown, position) => {
      if (!isRecord(candidate)) throw malformed(meta.provider);
      const index = typeof candidate.index === "number" ? candidate.index : position;
      const { text, calls } = readParts(candidate.content, meta.provider);
      const toolCalls: ToolCall[] = calls.map((c) => ({
        id: toolCallId(c, ordinal++),
        type: "function",
        function: { name: c.name, arguments: c.arguments },
      }));
      const reason = typeof candidate.finishReason === "string" ? candidate.finishReason : "STOP";
      const message: ChatCompletion["choices"][number]["message"] = {
        role: "assistant",
        content: text !== "" ? text : toolCalls.length > 0 ? null : "",
      };
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      completion.choices.push({ index, message, finish_reason: mapFinishReason(reason, toolCalls.length > 0), logprobs: null });
    });
  }
  if (body.usageMetadata !== undefined) completion.usage = mapUsage(body.usageMetadata);
  return completion;
}
