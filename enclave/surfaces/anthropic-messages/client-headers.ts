import { GatewayError } from "../../errors.js";
import type { HeaderReader } from "../../http/gateway-env.js";
import type { AnthropicClientHeaders } from "../../providers/types.js";

/**
 * The client's `anthropic-version` and `anthropic-beta` headers, checked and
 * bounded before anything is routed. On a native Anthropic route they go
 * upstream as sent (a beta that is dropped turns its feature off without a
 * word: the SDK's `beta.messages.create` would answer 200 with the feature
 * off). On a translated route no provider can honour a beta, so one is
 * refused (400 unsupported_capability) rather than ignored; the one
 * exception is `token-counting-2024-11-01`, which only names the counting
 * API itself (the SDK's `beta.messages.countTokens` always adds it).
 * `anthropic-version` names the wire format, which the gateway speaks on
 * translated routes, so there it is only checked.
 */
export const MAX_ANTHROPIC_BETA_HEADER = 2048;
export const MAX_ANTHROPIC_BETAS = 32;
const BETA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION = /^\d{4}-\d{2}-\d{2}$/;
/** Betas that change nothing a translated route would have to honour. */
const TRANSLATABLE_BETAS: ReadonlySet<string> = new Set(["token-counting-2024-11-01"]);

export function anthropicClientHeaders(headers: HeaderReader): AnthropicClientHeaders {
  const result: AnthropicClientHeaders = {};
  const version = headers.get("anthropic-version");
  if (version !== null) {
    if (!VERSION.test(version.trim())) throw new GatewayError("invalid_request", "anthropic-version must be a date like 2023-06-01.");
    result.version = version.trim();
  }
  const beta = headers.get("anthropic-beta");
  if (beta !== null) {
    if (beta.length > MAX_ANTHROPIC_BETA_HEADER) throw new GatewayError("invalid_request", `anthropic-beta is longer than ${MAX_ANTHROPIC_BETA_HEADER} characters.`);
    // Repeated headers arrive joined by ", " (RFC 9110 §5.3); both forms are one list.
    const names = beta
      .split(",")
      .map((b) => b.trim())
      .filter((b) => b !== "");
    if (names.length > MAX_ANTHROPIC_BETAS) throw new GatewayError("invalid_request", `anthropic-beta names more than ${MAX_ANTHROPIC_BETAS} betas.`);
    if (!names.every((b) => BETA_NAME.test(b))) throw new GatewayError("invalid_request", "anthropic-beta must be a comma-separated list of beta names.");
    if (names.length > 0) result.beta = names.join(",");
  }
  return result;
}

/** On a translated route: a beta no translation can honour is refused, naming it (names are ours to echo: they are not content). */
export function refuseUntranslatableBetas(headers: AnthropicClientHeaders): void {
  if (headers.beta === undefined) return;
  const refused = headers.beta.split(",").filter((b) => !TRANSLATABLE_BETAS.has(b));
  if (refused.length > 0) {
    throw new GatewayError(
      "unsupported_capability",
      `anthropic-beta ${refused.join(",")} needs a model served by Anthropic; this model's provider is reached by translation and cannot honour it.`,
    );
  }
}
