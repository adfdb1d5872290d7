import type { FinishReason } from "../canonical/types.js";

/**
 * Converse stopReason → OpenAI finish_reason. A guardrail or content filter
 * is content_filter; a stop sequence is a normal stop; unknown future
 * values end as a normal stop (or tool_calls when the turn called tools).
 */
export function mapStopReason(reason: unknown, hasToolCalls: boolean): Exclude<FinishReason, null> {
  if (reason === "max_tokens" || reason === "model_context_window_exceeded") return "length";
  if (reason === "guardrail_intervened" || reason === "content_filtered") return "content_filter";
  if (reason === "tool_use" || hasToolCalls) return "tool_calls";
  return "stop";
}
