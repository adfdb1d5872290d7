import type { ChatCompletion, ToolCall } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import { mapStopReason } from "./map-bedrock-stop-reason.js";
import { mapUsage } from "./map-bedrock-usage.js";

/**
 * Converse response (unknown JSON) → canonical ChatCompletion. Text blocks
 * are joined; toolUse blocks become tool calls with their input serialised
 * as the arguments string; reasoning blocks never reach `content`. A body
 * that is not a Converse answer is UpstreamError("malformed"), naming the
 * field, never its value.
 */
export interface ConverseMeta {
  id: string;
  created: number;
  model: string;
  provider: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function malformed(provider: string, what: string): UpstreamError {
  return new UpstreamError("malformed", `${provider}: ${what}`);
}

export function fromConverseResponse(body: unknown, meta: ConverseMeta): ChatCompletion {
  if (!isRecord(body)) throw malformed(meta.provider, "response is not a JSON object");
  const message = isRecord(body.output) ? body.output.message : undefined;
  if (!isRecord(message) || !Array.isArray(message.content)) throw malformed(meta.provider, "output.message.content is not an array");
  let text = "";
  const toolCalls: ToolCall[] = [];
  message.content.forEach((block: unknown, i) => {
    if (!isRecord(block)) throw malformed(meta.provider, `output.message.content[${i}] is not an object`);
    if (block.text !== undefined) {
      if (typeof block.text !== "string") throw malformed(meta.provider, `output.message.content[${i}].text is not a string`);
      text += block.text;
    } else if (block.toolUse !== undefined) {
      const t = block.toolUse;
      if (!isRecord(t) || typeof t.toolUseId !== "string" || typeof t.name !== "string") throw malformed(meta.provider, `output.message.content[${i}].toolUse is incomplete`);
      toolCalls.push({ id: t.toolUseId, type: "function", function: { name: t.name, arguments: JSON.stringify(t.input ?? {}) } });
    }
    // reasoningContent, citations, images and future blocks: not part of the OpenAI message.
  });
  if (typeof body.stopReason !== "string") throw malformed(meta.provider, "stopReason is not a string");
  const completion: ChatCompletion = {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: text !== "" ? text : toolCalls.length > 0 ? null : "", ...(toolCalls.length > 0 && { tool_calls: toolCalls }) },
        finish_reason: mapStopReason(body.stopReason, toolCalls.length > 0),
        logprobs: null,
      },
    ],
  };
  if (body.usage !== undefined) completion.usage = mapUsage(body.usage);
  return completion;
}
