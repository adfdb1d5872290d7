import type { Usage } from "../canonical/types.js";
import type { GeminiUsageMetadata } from "./gemini-api-types.js";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * usageMetadata → usage. OpenAI counts reasoning tokens as completion
 * tokens, so thoughtsTokenCount is added to candidatesTokenCount (and
 * reported again under completion_tokens_details.reasoning_tokens).
 * totalTokenCount is Google's own sum (it may also hold tool-use prompt
 * tokens) and is used when present.
 */
export function mapUsage(metadata: unknown): Usage {
  const m = isRecord(metadata) ? metadata : {};
  const count = (key: keyof GeminiUsageMetadata): number => {
    const v = m[key];
    return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const prompt = count("promptTokenCount");
  const thoughts = count("thoughtsTokenCount");
  const completion = count("candidatesTokenCount") + thoughts;
  const total = typeof m.totalTokenCount === "number" ? count("totalTokenCount") : prompt + completion;
  const usage: Usage & {
    completion_tokens_details?: { reasoning_tokens: number };
    prompt_tokens_details?: { cached_tokens: number };
  } = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
  if (thoughts > 0) usage.completion_tokens_details = { reasoning_tokens: thoughts };
  if (typeof m.cachedContentTokenCount === "number") usage.prompt_tokens_details = { cached_tokens: count("cachedContentTokenCount") };
  return usage;
}
