import { EgwError, type EgwErrorAction } from "../attestation/egw-error.js";

/**
 * Every failure a client sees is rendered from a GatewayError with a stable
 * `code` and the HTTP status it maps to: handlers throw one, toGatewayError
 * (enclave/upstream.ts) maps an adapter's UpstreamError to one, and anything
 * else becomes internal_error with a fixed message. Surfaces render it in
 * their own format (OpenAI `{error:{message,type,code}}`, Anthropic
 * `{type:"error",error:{type,message}}`).
 *
 * The codes are the snake_case API codes OpenAI-compatible clients switch
 * on, not ERR_ codes: the one exception attestation/egw-error.ts allows.
 *
 * Messages are not fixed per code: each call site names the field or limit
 * that failed. They carry no completion text, provider keys or client
 * tokens. One part is not ours: for a 4xx the provider refused (400, 422,
 * 404), the message ends with the provider's own bounded explanation
 * (providerDetails in enclave/providers/types.ts), meant for the client who
 * sent the request, and it may quote that client's prompt. So a message is
 * never logged; details for operators go to `cause` and are logged only as
 * codes and sizes.
 */
export type GatewayErrorCode =
  | "invalid_request" // 400: malformed JSON, wrong field types, unsupported parameter
  | "invalid_api_key" // 401: missing or unknown client token
  | "model_not_allowed" // 403: token may not use this model
  | "model_not_found" // 404: no route for the model
  | "not_found" // 404: unknown path
  | "method_not_allowed" // 405
  | "request_timeout" // 408: the request body did not arrive within limits.bodyTimeoutMs
  | "request_too_large" // 413: body over the limit (counted on the stream)
  | "unsupported_media_type" // 415
  | "rate_limited" // 429: per-client rate limit
  | "overloaded" // 429: concurrency limit reached; 503: in-flight body bytes budget reached
  | "attestation_rate_limited" // 429: too many fresh attestation documents
  | "upstream_rate_limited" // 429: provider said 429 and retries ran out
  | "upstream_error" // 502: provider answered 5xx, or with something unreadable
  | "upstream_unreachable" // 502: connect failure, DNS, TLS, egress refused
  | "upstream_timeout" // 504: connect, first byte, idle or total timeout
  | "unsupported_capability" // 400: the provider cannot do this (e.g. images on Anthropic)
  | "unsupported_parameter" // 400: a parameter this route cannot honour (e.g. previous_response_id where the gateway is stateless)
  | "identity_expired" // 503: the sealed identity's receipt key is past its window; the replica must be replaced
  | "internal_error"; // 500

export const STATUS: Record<GatewayErrorCode, number> = {
  invalid_request: 400,
  invalid_api_key: 401,
  model_not_allowed: 403,
  model_not_found: 404,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  request_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  overloaded: 429,
  attestation_rate_limited: 429,
  upstream_rate_limited: 429,
  upstream_error: 502,
  upstream_unreachable: 502,
  upstream_timeout: 504,
  unsupported_capability: 400,
  unsupported_parameter: 400,
  identity_expired: 503,
  internal_error: 500,
};

/** What a client should do; one action per code, as the status says. */
const ACTION: Record<GatewayErrorCode, EgwErrorAction> = {
  invalid_request: "fix-input",
  invalid_api_key: "fix-config",
  model_not_allowed: "fix-config",
  model_not_found: "fix-input",
  not_found: "fix-input",
  method_not_allowed: "fix-input",
  request_timeout: "retry",
  request_too_large: "fix-input",
  unsupported_media_type: "fix-input",
  rate_limited: "retry",
  overloaded: "retry",
  attestation_rate_limited: "retry",
  upstream_rate_limited: "retry",
  upstream_error: "retry",
  upstream_unreachable: "retry",
  upstream_timeout: "retry",
  unsupported_capability: "fix-input",
  unsupported_parameter: "fix-input",
  identity_expired: "stop",
  internal_error: "stop",
};

export class GatewayError extends EgwError<GatewayErrorCode> {
  override readonly name = "GatewayError";
  readonly status: number;
  /** Seconds the client should wait, for 429s. */
  readonly retryAfter: number | undefined;
  /** The request field at fault, for OpenAI's `error.param` (a field name, never a value). */
  readonly param: string | undefined;

  /** `status` overrides the code's usual one, where one code has two (overloaded: 429 or 503). */
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number; status?: number; param?: string }) {
    super(code, message, ACTION[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status ?? STATUS[code];
    this.retryAfter = options?.retryAfter;
    this.param = options?.param;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
