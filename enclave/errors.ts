/**
 * Every failure the gateway reports is a GatewayError with a stable `code`
 * and the HTTP status it maps to. Surfaces render it in their own format
 * (OpenAI `{error:{message,type,code}}`, Anthropic `{type:"error",error:{type,message}}`).
 * Messages are fixed per code and never contain prompt text, completion
 * text, provider keys or client tokens; details for operators go to `cause`
 * and are logged only as codes and sizes.
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
  identity_expired: 503,
  internal_error: 500,
};

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly code: GatewayErrorCode;
  readonly status: number;
  /** Seconds the client should wait, for 429s. */
  readonly retryAfter: number | undefined;

  /** `status` overrides the code's usual one, where one code has two (overloaded: 429 or 503). */
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options?.status ?? STATUS[code];
    this.retryAfter = options?.retryAfter;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
