/**
 * A token estimate for `count_tokens` where the provider has no counter:
 * one token per four characters (code points) of every string in the
 * request's `system`, `messages` and `tools` (not the `role`, `type` and
 * `cache_control` markers), rounded up, plus four per
 * message for the turn framing. Tokenizers differ by model; this is the
 * rule of thumb providers publish, marked as an estimate in the answer
 * (`x-egw-token-count: estimate`). Bounded by the body size limit, and the
 * walk by depth, so a hostile body cannot make it loop.
 */
const MAX_DEPTH = 64;
const MARKERS: ReadonlySet<string> = new Set(["role", "type", "cache_control"]);

export function estimateInputTokens(body: Record<string, unknown>): number {
  let chars = 0;
  const walk = (value: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    if (typeof value === "string") chars += Array.from(value).length;
    else if (Array.isArray(value)) for (const v of value) walk(v, depth + 1);
    else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) if (!MARKERS.has(k)) walk(v, depth + 1);
    }
  };
  walk(body.system, 0);
  walk(body.messages, 0);
  walk(body.tools, 0);
  const turns = Array.isArray(body.messages) ? body.messages.length : 0;
  return Math.ceil(chars / 4) + 4 * turns;
}
