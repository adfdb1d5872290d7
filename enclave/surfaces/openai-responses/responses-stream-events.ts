import type { GatewayError } from "../../errors.js";
import { errorObject } from "../../http/error-body.js";
import { frameSse } from "../../providers/openai/index.js";

/**
 * How a Responses stream the gateway writes ends when it breaks after its
 * first byte, on both paths (translated and native): an `error` event,
 * then `response.failed` as the stream's last event.
 *
 * Why both: openai-node (and LangChain over it) throws only on an event
 * whose data has an `error` member (src/core/streaming.ts), so the error
 * event carries OpenAI's nested error object besides the flat `code`,
 * `message`, `param` its types declare (ResponseErrorEvent); the Vercel AI
 * SDK reads either. `response.failed` (status "failed", `error` set) is what
 * a client that follows the response's status sees, and the event a
 * verifying client holds until the stream's receipt verifies
 * (attestation/client/stream-terminal.ts).
 */

type Json = Record<string, unknown>;

/** Frames one event the way OpenAI does: `event: <type>` and one `data:` line of JSON. */
export function responsesSse(event: Json): string {
  return frameSse(String(event.type), JSON.stringify(event));
}

export interface StreamFailureSource {
  /** The next sequence number (one past the last event written). */
  nextSequence(): number;
  /** The response as last seen (response.created or a later snapshot), to be marked failed. */
  failedResponse(error: { code: string; message: string }): Json;
}

export function failureEvents(source: StreamFailureSource, err: GatewayError): string {
  const nested = (errorObject(err, "openai") as { error: Json }).error;
  const error = { type: "error", sequence_number: source.nextSequence(), code: err.code, message: err.message, param: err.param ?? null, error: nested };
  const failed = { type: "response.failed", sequence_number: source.nextSequence(), response: source.failedResponse({ code: err.code, message: err.message }) };
  return responsesSse(error) + responsesSse(failed);
}

/**
 * For the native path: follows the upstream events as they pass (their
 * sequence numbers and the latest response snapshot), so that a failure
 * continues the numbering and names the response OpenAI started.
 */
export class NativeStreamTracker implements StreamFailureSource {
  #next = 0;
  #response: Json | undefined;

  constructor(private readonly fallback: () => Json) {}

  observe = (event: Json): void => {
    if (typeof event.sequence_number === "number" && Number.isSafeInteger(event.sequence_number) && event.sequence_number >= this.#next) this.#next = event.sequence_number + 1;
    const response = event.response;
    if (typeof response === "object" && response !== null && !Array.isArray(response)) this.#response = response as Json;
  };

  nextSequence(): number {
    return this.#next++;
  }

  failedResponse(error: { code: string; message: string }): Json {
    return { ...(this.#response ?? this.fallback()), status: "failed", error };
  }
}
