import type { ClientError } from "./errors.js";

/**
 * The answer the verifying client makes up, locally, when it refuses a
 * gateway (attestation or receipt failure), so that the official SDKs show
 * the code and the reason and do not retry a refusal as a network error.
 * The verified fetch returns it (unless `verificationErrors: "throw"`) and
 * `egw proxy` sends it; both build it here, so the two look the same.
 *
 * Why a Response and not a thrown error: the openai and Anthropic SDKs turn
 * any error thrown by `fetch` into `APIConnectionError: Connection error.`
 * and retry it (openai-node client.ts makeRequest; Anthropic's likewise), and
 * the AI SDK retries an APICallError marked retryable, which a thrown network
 * error is (provider-utils handleFetchError). A Response with a status the
 * SDKs map to their plain API error, and `x-should-retry: false`, reaches the
 * caller as `APIError` with `status`, `code` and a message "406 CODE: reason".
 *
 * Why 406: the status of a refusal must be one that no client retries.
 * The openai and Anthropic SDKs retry 408, 409, 429 and 5xx (shouldRetry;
 * they also obey x-should-retry), the AI SDK retries 408, 409, 429 and 5xx
 * (APICallError.isRetryable, no header), @google/genai 408, 429 and 5xx
 * when retries are on, and LangChain's AsyncCaller retries every status
 * except 400-407, 409 and 413 (six times by default) and reads no header.
 * Of the statuses none of them retries, 406 is the one the gateway never
 * sends (enclave/errors.ts: 400, 401, 403, 404, 405, 408, 413, 415 …) and
 * fetch gives no special meaning (407 is a network error in WHATWG fetch;
 * 402 reads as billing). Its meaning fits: the answer is not acceptable to
 * the client. (495, nginx's "SSL Certificate Error", was the first choice;
 * LangChain retries it.) The SDKs map 406 to their generic `APIError`.
 *
 * A transient failure (action "retry": the gateway was unreachable, or its
 * attestation endpoint rate-limited us) is a 502 with `x-should-retry: true`
 * instead: there the SDK's own retry policy is the right one, and nothing
 * was sent to the gateway yet.
 *
 * It cannot pass for a gateway answer: it carries no x-egw-receipt (every
 * answer of the gateway's /v1 API does, and the verifying client refuses one
 * without), it carries `x-egw-client-error: <code>`, and its error type is
 * `egw_verification_failed` / `egw_gateway_unavailable`, which the gateway
 * never uses. Its body names no prompt, token or key: the message is the
 * ClientError's, which by rule carries none (egw-error.ts).
 */

/** Status of a refusal: not retried by any SDK, never sent by the gateway. */
export const CLIENT_REFUSAL_STATUS = 406;
/** Status of a transient client-side failure (gateway unreachable, attestation rate-limited): retried. */
export const CLIENT_UNAVAILABLE_STATUS = 502;
/** Header naming the client's error code on a locally made answer. Never on a gateway answer. */
export const CLIENT_ERROR_HEADER = "x-egw-client-error";

/** Error `type` of a refusal, and of a transient failure, in the body. */
export const CLIENT_REFUSAL_TYPE = "egw_verification_failed";
export const CLIENT_UNAVAILABLE_TYPE = "egw_gateway_unavailable";

/** Whose error body shape a path gets: the surface's SDK parses its own. */
export type ErrorShape = "openai" | "anthropic" | "gemini";

export function errorShapeFor(path: string): ErrorShape {
  const p = path.split("?")[0] ?? "";
  if (p === "/v1/messages" || p.startsWith("/v1/messages/")) return "anthropic";
  if (p === "/v1beta" || p.startsWith("/v1beta/")) return "gemini";
  return "openai";
}

export interface ClientErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** "CODE: reason", the message every shape carries. */
export function clientErrorMessage(code: string, reason: string): string {
  return reason.startsWith(`${code}:`) ? reason : `${code}: ${reason}`;
}

/**
 * The status, headers and body of the local answer for `code` on `path`.
 * `statusOverride` is for the proxy's checks of the local request itself
 * (403, 400, 413): the body then names the same status as the answer.
 */
export function clientErrorAnswer(path: string, code: string, reason: string, retry: boolean, statusOverride?: number): ClientErrorAnswer {
  const status = statusOverride ?? (retry ? CLIENT_UNAVAILABLE_STATUS : CLIENT_REFUSAL_STATUS);
  const type = retry ? CLIENT_UNAVAILABLE_TYPE : CLIENT_REFUSAL_TYPE;
  const message = clientErrorMessage(code, reason);
  const shape = errorShapeFor(path);
  const body =
    shape === "anthropic"
      ? { type: "error", error: { type, message, code } }
      : shape === "gemini"
        ? // google.rpc.Status as Google APIs send it; @google/genai shows the JSON.
          { error: { code: status, message, status: type.toUpperCase() } }
        : { error: { message, type, param: null, code } };
  const text = JSON.stringify(body);
  return {
    status,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(text)),
      "x-should-retry": retry ? "true" : "false",
      [CLIENT_ERROR_HEADER]: code,
    },
    body: text,
  };
}

/** The answer for a ClientError: a refusal unless its action is "retry". */
export function clientErrorResponse(err: ClientError, path: string): Response {
  const answer = clientErrorAnswer(path, err.code, err.message, err.action === "retry");
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
}

/** Whether a Response was made up by the verifying client (and so is not the gateway's). */
export function isClientErrorResponse(response: Response): boolean {
  return response.headers.has(CLIENT_ERROR_HEADER);
}
