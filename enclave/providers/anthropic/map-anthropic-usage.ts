import type { ChatCompletion, Usage } from "../canonical/types.js";
import type { AnthropicUsage } from "./anthropic-api-types.js";

/** Anthropic usage ↔ OpenAI usage, both directions. */

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** Cache writes and reads are prompt tokens too: Anthropic reports them apart from input_tokens. */
export function toOpenAIUsage(usage: Partial<AnthropicUsage> | undefined): Usage {
  const prompt = count(usage?.input_tokens) + count(usage?.cache_creation_input_tokens) + count(usage?.cache_read_input_tokens);
  const completion = count(usage?.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** OpenAI prompt_tokens include cached tokens; Anthropic reports cache reads apart from input_tokens. */
export function toAnthropicUsage(usage: ChatCompletion["usage"] | null | undefined): AnthropicUsage {
  const cached = (usage as { prompt_tokens_details?: { cached_tokens?: unknown } } | undefined)?.prompt_tokens_details?.cached_tokens;
  const cacheRead = typeof cached === "number" && cached >= 0 ? cached : 0;
  const prompt = usage?.prompt_tokens ?? 0;
  return {
    input_tokens: Math.max(0, prompt - cacheRead),
    output_tokens: usage?.completion_tokens ?? 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cacheRead,
  };
}
