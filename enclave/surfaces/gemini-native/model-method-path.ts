import { GatewayError } from "../../errors.js";

/**
 * `/v1beta/models/{model}:{method}` → the client's model name and the
 * method. The model is everything between `models/` and the last colon, so
 * a prefix-routed name with a slash (`models/openai/gpt-4o:generateContent`,
 * as @google/genai writes `openai/gpt-4o`) keeps its slash. Percent-escapes
 * are decoded once; the router then decides what the name means.
 */
export const GEMINI_METHODS = ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"] as const;
export type GeminiMethod = (typeof GEMINI_METHODS)[number];

const PATH = /^\/v1beta\/models\/(.{1,512}):([A-Za-z]{1,64})$/s;

export function modelMethodOf(path: string): { model: string; method: GeminiMethod } {
  const match = PATH.exec(path);
  const method = match?.[2] as GeminiMethod | undefined;
  if (!match || !GEMINI_METHODS.includes(method!)) throw new GatewayError("not_found", "Unknown path.");
  return { model: decodeModel(match[1]!), method: method! };
}

/** `/v1beta/models/{model}` (GET) → the model name. */
export function modelOf(path: string): string {
  const match = /^\/v1beta\/models\/(.{1,512})$/s.exec(path);
  if (!match || match[1]!.includes(":")) throw new GatewayError("not_found", "Unknown path.");
  return decodeModel(match[1]!);
}

function decodeModel(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new GatewayError("invalid_request", "The model name in the path is not valid percent-encoding.");
  }
}
