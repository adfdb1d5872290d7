import { UpstreamError } from "../types.js";

/**
 * Readers shared by the JSON answer (convert-from-gemini-response.ts) and the
 * stream (map-gemini-stream.ts): a GenerateContentResponse is the same
 * object in both, one per SSE event when streamed.
 */

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What one candidate's parts say, in OpenAI terms. */
export interface CandidateParts {
  text: string;
  calls: { id?: string; name: string; arguments: string }[];
}

/** Reads a Content's parts: non-thought text concatenated, function calls in order. Other part kinds are ignored. */
export function readParts(content: unknown, provider: string): CandidateParts {
  const out: CandidateParts = { text: "", calls: [] };
  if (content === undefined || content === null) return out;
  if (!isRecord(content)) throw malformed(provider);
  if (content.parts === undefined) return out;
  if (!Array.isArray(content.parts)) throw malformed(provider);
  for (const part of content.parts) {
    if (!isRecord(part)) throw malformed(provider);
    if (typeof part.text === "string" && part.thought !== true) out.text += part.text;
    if (part.functionCall !== undefined) {
      const fc = part.functionCall;
      if (!isRecord(fc) || typeof fc.name !== "string") throw malformed(provider);
      if (fc.args !== undefined && fc.args !== null && !isRecord(fc.args)) throw malformed(provider);
      out.calls.push({
        ...(typeof fc.id === "string" && fc.id !== "" ? { id: fc.id } : {}),
        name: fc.name,
        arguments: JSON.stringify(fc.args ?? {}),
      });
    }
  }
  return out;
}

/**
 * Tool-call ids: Gemini's own FunctionCall.id when it sends one, otherwise
 * `call_<n>` with n counting calls across the whole response (stream or not),
 * so the same upstream answer always gets the same ids.
 */
export function toolCallId(call: { id?: string }, ordinal: number): string {
  return call.id ?? `call_${ordinal}`;
}

export function malformed(provider: string): UpstreamError {
  return new UpstreamError("malformed", `${provider}: response is not a GenerateContentResponse`);
}

export function completionId(body: Record<string, unknown>, fallback: string): string {
  return typeof body.responseId === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(body.responseId) ? `chatcmpl-${body.responseId}` : fallback;
}

/** True when Gemini refused the prompt itself: promptFeedback.blockReason and no candidates. */
export function promptBlocked(body: Record<string, unknown>): boolean {
  const candidates = body.candidates;
  const none = candidates === undefined || (Array.isArray(candidates) && candidates.length === 0);
  return none && isRecord(body.promptFeedback) && typeof body.promptFeedback.blockReason === "string";
}
