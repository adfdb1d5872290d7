import type { FinishReason } from "../canonical/types.js";
import type { AnthropicStopReason } from "./anthropic-api-types.js";

/**
 * Anthropic stop_reason ↔ OpenAI finish_reason, both directions: the
 * adapter reads Anthropic's, the /v1/messages surface writes it.
 */

export function toOpenAIFinishReason(stopReason: string | null | undefined): FinishReason {
  switch (stopReason) {
    case "end_turn":
    case "stop_sequence":
    case "pause_turn":
      return "stop";
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "refusal":
      return "content_filter";
    case null:
    case undefined:
      return null;
    default:
      // A stop reason newer than this code: the turn did end.
      return "stop";
  }
}

/** stop → end_turn, length → max_tokens, tool_calls → tool_use, content_filter → refusal. */
export function toAnthropicStopReason(finishReason: FinishReason | string | undefined): AnthropicStopReason {
  switch (finishReason) {
    case "length":
      return "max_tokens";
    case "tool_calls":
    case "function_call":
      return "tool_use";
    case "content_filter":
      return "refusal";
    default:
      return "end_turn";
  }
}
