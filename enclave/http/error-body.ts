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

export type Surface = "openai" | "anthropic";

export function errorObject(err: GatewayError, surface: Surface): unknown {
  if (surface === "anthropic") return { type: "error", error: { type: ANTHROPIC_TYPE[err.code], message: err.message } };
  return { error: { message: err.message, type: OPENAI_TYPE[err.code], param: err.param ?? null, code: err.code } };
}
