import type { Usage } from "../canonical/types.js";

/**
 * Converse TokenUsage → OpenAI usage. Cache reads are reported as
 * prompt_tokens_details.cached_tokens; Bedrock's inputTokens excludes them,
 * OpenAI's prompt_tokens includes them, so they are added.
 */
export function mapUsage(usage: unknown): Usage {
  const u = typeof usage === "object" && usage !== null && !Array.isArray(usage) ? (usage as Record<string, unknown>) : {};
  const count = (key: string): number => {
    const v = u[key];
    return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const cached = count("cacheReadInputTokens");
  const prompt = count("inputTokens") + cached + count("cacheWriteInputTokens");
  const completion = count("outputTokens");
  const out: Usage & { prompt_tokens_details?: { cached_tokens: number } } = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (cached > 0) out.prompt_tokens_details = { cached_tokens: cached };
  return out;
}
