import type { ChatCompletion } from "../canonical/types.js";
import { UpstreamError } from "../types.js";
import type { AnthropicContentBlock, AnthropicMessage } from "./anthropic-api-types.js";
import { toAnthropicStopReason } from "./map-anthropic-stop-reason.js";
import { toAnthropicUsage } from "./map-anthropic-usage.js";

/**
 * Canonical ChatCompletion → Anthropic Message, for the gateway's
 * `/v1/messages` surface when the routed provider is not Anthropic.
 */

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `msg_` + the completion id without OpenAI's `chatcmpl-` prefix, limited to
 * the characters Anthropic ids use; deterministic, so a receipt and a log
 * line can be matched to the upstream id.
 */
export function toAnthropicMessageId(completionId: string): string {
  if (/^msg_[A-Za-z0-9_-]+$/.test(completionId)) return completionId;
  const tail = completionId.replace(/^chatcmpl-/, "").replace(/[^A-Za-z0-9_-]/g, "");
  return `msg_${tail === "" ? "gateway" : tail}`;
}

export interface ToAnthropicMessageOptions {
  /** Provider instance name, for error messages. */
  provider: string;
}

/**
 * ChatCompletion (first choice) → Anthropic Message. Tool call arguments
 * must parse as a JSON object, since Anthropic's tool_use.input is one; a
 * model that produced anything else is reported as a malformed upstream.
 */
export function completionToAnthropicMessage(completion: ChatCompletion, options: ToAnthropicMessageOptions): AnthropicMessage {
  const choice = completion.choices[0];
  if (choice === undefined) throw new UpstreamError("malformed", `${options.provider}: completion has no choices`);
  const content: AnthropicContentBlock[] = [];
  const text = choice.message.content ?? choice.message.refusal ?? null;
  const toolCalls = choice.message.tool_calls ?? [];
  if (typeof text === "string" && (text !== "" || toolCalls.length === 0)) content.push({ type: "text", text });
  for (const call of toolCalls) {
    content.push({ type: "tool_use", id: call.id, name: call.function.name, input: parseToolInput(call.function.arguments, options.provider) });
  }
  if (content.length === 0) content.push({ type: "text", text: "" });
  return {
    id: toAnthropicMessageId(completion.id),
    type: "message",
    role: "assistant",
    model: completion.model,
    content,
    stop_reason: toAnthropicStopReason(choice.finish_reason),
    stop_sequence: null,
    usage: toAnthropicUsage(completion.usage),
  };
}

export function parseToolInput(args: string, provider: string): Record<string, unknown> {
  if (args.trim() === "") return {};
  let input: unknown;
  try {
    input = JSON.parse(args);
  } catch (cause) {
    throw new UpstreamError("malformed", `${provider}: tool call arguments are not JSON`, undefined, undefined, { cause });
  }
  if (!isRecord(input)) throw new UpstreamError("malformed", `${provider}: tool call arguments are not a JSON object`);
  return input;
}
