import { errorObject } from "../../http/error-body.js";
import type { StreamEncoder } from "../../http/signed-stream.js";
import { anthropicErrorEvent, formatAnthropicSse } from "../../providers/anthropic/index.js";

/** The Anthropic surface streams pre-framed SSE text (native, or translated per route); an error is an `error` event. */
export const anthropicStreamEncoder: StreamEncoder<string> = {
  chunk: (text) => text,
  end: () => "",
  error: (err) => formatAnthropicSse(anthropicErrorEvent((errorObject(err, "anthropic") as { error: { type: string } }).error.type, err.message)),
};
