/**
 * countTokens where the provider has no counter: an estimate, never a count.
 * Four characters of text per token (the rule of thumb Google's and
 * OpenAI's docs both give for English), plus 258 per image or other media
 * part (Gemini's fixed charge for an image up to 384 px). The surface marks
 * the answer as an estimate (`x-egw-token-count: estimate`, docs/PROTOCOL.md).
 */
const CHARS_PER_TOKEN = 4;
const MEDIA_PART_TOKENS = 258;
const MAX_DEPTH = 64;

export function estimateGeminiTokens(body: Record<string, unknown>): number {
  let chars = 0;
  let media = 0;
  const visit = (value: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
    } else if (typeof value === "object" && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        if (key === "text" && typeof child === "string") chars += child.length;
        else if (key === "inlineData" || key === "fileData") media++;
        else if (key === "name" || key === "description") chars += typeof child === "string" ? child.length : 0;
        else visit(child, depth + 1);
      }
    }
  };
  // countTokens takes either `contents` or a whole `generateContentRequest`.
  const request = typeof body.generateContentRequest === "object" && body.generateContentRequest !== null ? (body.generateContentRequest as Record<string, unknown>) : body;
  visit(request.contents, 0);
  visit(request.systemInstruction, 0);
  visit(request.tools, 0);
  return Math.ceil(chars / CHARS_PER_TOKEN) + media * MEDIA_PART_TOKENS;
}
