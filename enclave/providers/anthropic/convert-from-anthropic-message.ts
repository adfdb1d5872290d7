import type { ChatCompletion, ToolCall } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import type { AnthropicUsage } from "./anthropic-api-types.js";
import { toOpenAIFinishReason } from "./map-anthropic-stop-reason.js";
import { toOpenAIUsage } from "./map-anthropic-usage.js";

/** Anthropic Message (the upstream's JSON answer) → canonical ChatCompletion. */

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface FromAnthropicOptions {
  provider: string;
  now: () => Date;
}

/**
 * Reads an upstream Anthropic Message (unknown JSON) into a ChatCompletion.
 * Text blocks are concatenated; tool_use blocks become tool_calls; thinking
 * and server-tool blocks are not exposed. A body that is not a Message is a
 * malformed upstream.
 */
export function fromAnthropicMessage(body: unknown, options: FromAnthropicOptions): ChatCompletion {
  const malformed = (what: string) => new UpstreamError("malformed", `${options.provider}: response ${what}`);
  if (!isRecord(body) || body.type !== "message") throw malformed("is not a message");
  if (typeof body.id !== "string") throw malformed("has no id");
  if (!Array.isArray(body.content)) throw malformed("has no content array");
  let text = "";
  let sawText = false;
  const toolCalls: ToolCall[] = [];
  for (const block of body.content) {
    if (!isRecord(block)) throw malformed("has a content block that is not an object");
    if (block.type === "text") {
      if (typeof block.text !== "string") throw malformed("has a text block without text");
      text += block.text;
      sawText = true;
    } else if (block.type === "tool_use") {
      if (typeof block.id !== "string" || typeof block.name !== "string") throw malformed("has a tool_use block without id or name");
      toolCalls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
  }
  const message: ChatCompletion["choices"][number]["message"] = {
    role: "assistant",
    content: sawText || toolCalls.length === 0 ? text : null,
    refusal: null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const stopReason = typeof body.stop_reason === "string" ? body.stop_reason : null;
  return {
    id: body.id,
    object: "chat.completion",
    created: Math.floor(options.now().getTime() / 1000),
    model: typeof body.model === "string" ? body.model : "",
    choices: [{ index: 0, message, finish_reason: toOpenAIFinishReason(stopReason) ?? "stop", logprobs: null }],
    usage: toOpenAIUsage(isRecord(body.usage) ? (body.usage as Partial<AnthropicUsage>) : undefined),
  };
}
