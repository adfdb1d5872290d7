import { googleErrorObject } from "../../http/error-body.js";
import type { StreamEncoder } from "../../http/signed-stream.js";
import { formatGeminiSse } from "../../providers/gemini/index.js";

/**
 * The Gemini surface streams pre-framed SSE text (native, or translated per
 * route). A failure after the first byte is Google's own in-stream error, a
 * data event holding `{"error": {"code", "message", "status"}}`, which
 * @google/genai throws as ApiError with that code.
 */
export const geminiStreamEncoder: StreamEncoder<string> = {
  chunk: (text) => text,
  end: () => "",
  error: (err) => formatGeminiSse(googleErrorObject(err)),
};
