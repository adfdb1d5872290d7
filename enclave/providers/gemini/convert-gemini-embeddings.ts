import { GatewayError } from "../../errors.js";
import type { EmbeddingsRequest } from "../canonical/types.js";
import { UpstreamError } from "../types.js";

/**
 * Canonical embeddings request ↔ Gemini batchEmbedContents: the inputs it
 * takes (text only), and the vectors and token count read off the answer.
 */

/** OpenAI's own bound on inputs per embeddings request. */
const MAX_EMBED_INPUTS = 2048;

export function embeddingInputs(request: EmbeddingsRequest): string[] {
  const input: unknown = request.input;
  const list = typeof input === "string" ? [input] : input;
  if (!Array.isArray(list) || list.length === 0) throw new GatewayError("invalid_request", "input must be a string or a non-empty array of strings");
  if (!list.every((item) => typeof item === "string")) {
    throw new GatewayError("unsupported_capability", "Gemini embeddings take text; token-id arrays are not supported");
  }
  if (list.length > MAX_EMBED_INPUTS) throw new GatewayError("invalid_request", `input may hold at most ${MAX_EMBED_INPUTS} strings`);
  return list as string[];
}

export function embeddingVectors(json: unknown, expected: number, provider: string): number[][] {
  const embeddings = typeof json === "object" && json !== null ? (json as Record<string, unknown>).embeddings : undefined;
  if (!Array.isArray(embeddings) || embeddings.length !== expected) {
    throw new UpstreamError("malformed", `${provider}: batchEmbedContents answer does not match the request`);
  }
  return embeddings.map((e: unknown) => {
    const values = typeof e === "object" && e !== null ? (e as Record<string, unknown>).values : undefined;
    if (!Array.isArray(values) || !values.every((v) => typeof v === "number" && Number.isFinite(v))) {
      throw new UpstreamError("malformed", `${provider}: embedding values are not numbers`);
    }
    return values as number[];
  });
}

export function embeddingTokens(json: unknown): number {
  const usage = typeof json === "object" && json !== null ? (json as Record<string, unknown>).usageMetadata : undefined;
  const count = typeof usage === "object" && usage !== null ? (usage as Record<string, unknown>).promptTokenCount : undefined;
  return typeof count === "number" && Number.isInteger(count) && count >= 0 ? count : 0;
}
