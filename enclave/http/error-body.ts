import type { GatewayError, GatewayErrorCode } from "../errors.js";

/**
 * Errors in each surface's own format, so the official SDKs raise their own
 * typed errors (openai.RateLimitError, Anthropic.NotFoundError, …).
 */
const OPENAI_TYPE: Record<GatewayErrorCode, string> = {
  invalid_request: "invalid_request_error",
  invalid_api_key: "authentication_error",
  model_not_allowed: "permission_error",
  model_not_found: "invalid_request_error",
  not_found: "invalid_request_error",
  method_not_allowed: "invalid_request_error",
  request_timeout: "invalid_request_error",
  request_too_large: "invalid_request_error",
  unsupported_media_type: "invalid_request_error",
  rate_limited: "rate_limit_error",
  overloaded: "rate_limit_error",
  attestation_rate_limited: "rate_limit_error",
  upstream_rate_limited: "rate_limit_error",
  upstream_error: "api_error",
  upstream_unreachable: "api_error",
  upstream_timeout: "api_error",
  unsupported_capability: "invalid_request_error",
  unsupported_parameter: "invalid_request_error",
  identity_expired: "api_error",
  internal_error: "api_error",
};

const ANTHROPIC_TYPE: Record<GatewayErrorCode, string> = {
  invalid_request: "invalid_request_error",
  invalid_api_key: "authentication_error",
  model_not_allowed: "permission_error",
  model_not_found: "not_found_error",
  not_found: "not_found_error",
  method_not_allowed: "invalid_request_error",
  request_timeout: "invalid_request_error",
  request_too_large: "request_too_large",
  unsupported_media_type: "invalid_request_error",
  rate_limited: "rate_limit_error",
  overloaded: "overloaded_error",
  attestation_rate_limited: "rate_limit_error",
  upstream_rate_limited: "rate_limit_error",
  upstream_error: "api_error",
  upstream_unreachable: "api_error",
  upstream_timeout: "api_error",
  unsupported_capability: "invalid_request_error",
  unsupported_parameter: "invalid_request_error",
  identity_expired: "api_error",
  internal_error: "api_error",
};

/** google.rpc.Code names, as Google's `error.status` carries them (the HTTP status is the code's own). */
const GOOGLE_STATUS: Record<GatewayErrorCode, string> = {
  invalid_request: "INVALID_ARGUMENT",
  invalid_api_key: "UNAUTHENTICATED",
  model_not_allowed: "PERMISSION_DENIED",
  model_not_found: "NOT_FOUND",
  not_found: "NOT_FOUND",
  method_not_allowed: "UNIMPLEMENTED",
  request_timeout: "DEADLINE_EXCEEDED",
  request_too_large: "INVALID_ARGUMENT",
  unsupported_media_type: "INVALID_ARGUMENT",
  rate_limited: "RESOURCE_EXHAUSTED",
  overloaded: "RESOURCE_EXHAUSTED",
  attestation_rate_limited: "RESOURCE_EXHAUSTED",
  upstream_rate_limited: "RESOURCE_EXHAUSTED",
  upstream_error: "UNAVAILABLE",
  upstream_unreachable: "UNAVAILABLE",
  upstream_timeout: "DEADLINE_EXCEEDED",
  unsupported_capability: "INVALID_ARGUMENT",
  unsupported_parameter: "INVALID_ARGUMENT",
  identity_expired: "UNAVAILABLE",
  internal_error: "INTERNAL",
};

export type Surface = "openai" | "anthropic" | "gemini";

/** Google's error shape: `{"error": {"code": <HTTP status>, "message", "status": <google.rpc.Code name>}}`; @google/genai's ApiError reads it. */
export function googleErrorObject(err: GatewayError): { error: { code: number; message: string; status: string } } {
  return { error: { code: err.status, message: err.message, status: GOOGLE_STATUS[err.code] } };
}

export function errorObject(err: GatewayError, surface: Surface): unknown {
  if (surface === "gemini") return googleErrorObject(err);
  if (surface === "anthropic") return { type: "error", error: { type: ANTHROPIC_TYPE[err.code], message: err.message } };
  return { error: { message: err.message, type: OPENAI_TYPE[err.code], param: err.param ?? null, code: err.code } };
}
