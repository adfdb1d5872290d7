import { GatewayError } from "../../errors.js";

/**
 * The built-in model's moderation, deterministic and NOT a classifier: an
 * input is flagged exactly when its text contains "[flag]" (any case); a
 * flagged input has category `harassment` true with score 1, everything
 * else false and 0. Inputs: a string, an array of strings, or an array of
 * content parts ({type:"text",text} / {type:"image_url"}, one result for
 * all of them, as OpenAI does); at most 32 results.
 */
export const LOCAL_MODERATION_MARKER = "[flag]";
const CATEGORIES = [
  "harassment",
  "harassment/threatening",
  "hate",
  "hate/threatening",
  "illicit",
  "illicit/violent",
  "self-harm",
  "self-harm/intent",
  "self-harm/instructions",
  "sexual",
  "sexual/minors",
  "violence",
  "violence/graphic",
] as const;
const MAX_INPUTS = 32;

export function localModerations(request: Record<string, unknown>, model: string, created: number): unknown {
  const results = inputTexts(request.input).map((text) => {
    const flagged = text.toLowerCase().includes(LOCAL_MODERATION_MARKER);
    const categories = Object.fromEntries(CATEGORIES.map((c) => [c, flagged && c === "harassment"]));
    const scores = Object.fromEntries(CATEGORIES.map((c) => [c, flagged && c === "harassment" ? 1 : 0]));
    const applied = Object.fromEntries(CATEGORIES.map((c) => [c, ["text"]]));
    return { flagged, categories, category_scores: scores, category_applied_input_types: applied };
  });
  return { id: `modr-local-${created}`, model, results };
}

function inputTexts(input: unknown): string[] {
  if (typeof input === "string") return [input];
  if (Array.isArray(input) && input.length > 0 && input.length <= MAX_INPUTS) {
    if (input.every((x) => typeof x === "string")) return input as string[];
    const parts = input as { type?: unknown; text?: unknown }[];
    if (parts.every((p) => typeof p === "object" && p !== null && (p.type === "image_url" || (p.type === "text" && typeof p.text === "string")))) {
      return [parts.map((p) => (p.type === "text" ? String(p.text) : "")).join(" ")];
    }
  }
  throw new GatewayError("invalid_request", `input must be a string, or an array of 1…${MAX_INPUTS} strings or content parts.`);
}
