import { errorObject } from "../../http/error-body.js";
import type { StreamEncoder } from "../../http/signed-stream.js";

/** OpenAI chat streams: one `data:` event per chunk, `data: [DONE]` at the end, an error object in-stream. */
export const openaiStreamEncoder: StreamEncoder = {
  chunk: (chunk) => `data: ${JSON.stringify(chunk)}\n\n`,
  end: () => "data: [DONE]\n\n",
  error: (err) => `data: ${JSON.stringify(errorObject(err, "openai"))}\n\n`,
};
