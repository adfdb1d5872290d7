import type { FinishReason } from "../canonical/types.js";

/**
 * Gemini FinishReason → OpenAI finish_reason. Everything that means "a
 * policy stopped the output" is content_filter; the rest (OTHER, LANGUAGE,
 * MALFORMED_FUNCTION_CALL, unknown future values) ends as a normal stop,
 * or tool_calls when the candidate called functions.
 */
const CONTENT_FILTER_REASONS = new Set(["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"]);

export function mapFinishReason(reason: string, hasToolCalls: boolean): Exclude<FinishReason, null> {
  if (reason === "MAX_TOKENS") return "length";
  if (CONTENT_FILTER_REASONS.has(reason)) return "content_filter";
  return hasToolCalls ? "tool_calls" : "stop";
}
