import { GatewayError } from "../errors.js";
import type { HeaderReader } from "./gateway-env.js";

/**
 * The OpenAI headers a client's SDK sends that mean something to OpenAI
 * (`OpenAI-Beta` switches features on, `OpenAI-Organization` and
 * `OpenAI-Project` pick whose quota and data controls apply), forwarded as
 * sent on native routes only, after the adapter's own headers cannot be
 * overridden by them (openai-native-responses.ts merges them under its
 * own). Bounded and single-line, so that none can smuggle a second header;
 * their values are never logged. Other providers never get them, OpenAI-
 * compatible ones included (an organization id is OpenAI's to read).
 */
export const FORWARDED_OPENAI_HEADERS = ["openai-beta", "openai-organization", "openai-project"] as const;

/** Longer than any organization or project id, or list of beta flags, OpenAI issues. */
export const MAX_FORWARDED_HEADER_CHARS = 512;

export function openaiClientHeaders(headers: HeaderReader): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_OPENAI_HEADERS) {
    const value = headers.get(name);
    if (value === null) continue;
    // Printable ASCII only (RFC 9110 §5.5 field-vchar and spaces), nothing OpenAI would not take.
    if (value.length > MAX_FORWARDED_HEADER_CHARS || !/^[\x20-\x7e]*$/.test(value)) {
      throw new GatewayError("invalid_request", `The ${name} header must be at most ${MAX_FORWARDED_HEADER_CHARS} printable ASCII characters.`, { param: name });
    }
    if (value.trim() !== "") out[name] = value.trim();
  }
  return out;
}
