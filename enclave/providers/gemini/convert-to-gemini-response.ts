import type { ChatCompletion, FinishReason, ToolCall, Usage } from "../canonical/types.js";
import { UpstreamError } from "../types.js";

/**
 * Canonical completion → Gemini GenerateContentResponse, for a Gemini client
 * on a route whose provider does not speak Gemini. The inverse of
 * convert-from-gemini-response.ts:
 * - each choice is a candidate: text as one text part, each tool call as a
 *   functionCall part (its id kept, so the client's functionResponse can name
 *   it), role "model";
 * - finish_reason: stop and tool_calls → STOP (Gemini reports function calls
 *   with STOP), length → MAX_TOKENS, content_filter → SAFETY;
 * - usage → usageMetadata; reasoning tokens, which the canonical usage counts
 *   as completion tokens, go back to thoughtsTokenCount;
 * - model → modelVersion, id → responseId.
 */

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function geminiFinishReason(reason: FinishReason): string {
  if (reason === "length") return "MAX_TOKENS";
  if (reason === "content_filter") return "SAFETY";
  return "STOP";
}

export function geminiUsageMetadata(usage: Usage | null | undefined): Record<string, number> | undefined {
  if (!usage) return undefined;
  const details = (usage as { completion_tokens_details?: { reasoning_tokens?: unknown } }).completion_tokens_details;
  const thoughts = typeof details?.reasoning_tokens === "number" ? details.reasoning_tokens : 0;
  return {
    promptTokenCount: usage.prompt_tokens,
    candidatesTokenCount: Math.max(0, usage.completion_tokens - thoughts),
    totalTokenCount: usage.total_tokens,
    ...(thoughts > 0 && { thoughtsTokenCount: thoughts }),
  };
}

/** A tool call's arguments as Gemini's FunctionCall.args (a JSON object); anything else is an unreadable upstream answer. */
export function functionCallPart(call: ToolCall, provider: string): Record<string, unknown> {
  let args: unknown = {};
  if (call.function.arguments.trim() !== "") {
    try {
      args = JSON.parse(call.function.arguments);
    } catch {
      throw new UpstreamError("malformed", `${provider}: tool call arguments are not JSON`);
    }
  }
  if (!isRecord(args)) throw new UpstreamError("malformed", `${provider}: tool call arguments are not a JSON object`);
  return { functionCall: { id: call.id, name: call.function.name, args } };
}

/** The id Google's responseId allows: the canonical id without OpenAI's prefix. */
export function geminiResponseId(id: string): string {
  return id.replace(/^chatcmpl-/, "");
}

export function completionToGeminiResponse(completion: ChatCompletion, options: { provider: string }): Record<string, unknown> {
  const candidates = completion.choices.map((choice) => {
    const parts: Record<string, unknown>[] = [];
    const text = choice.message.content ?? "";
    if (text !== "") parts.push({ text });
    for (const call of choice.message.tool_calls ?? []) parts.push(functionCallPart(call, options.provider));
    if (parts.length === 0) parts.push({ text: "" });
    return { content: { parts, role: "model" }, finishReason: geminiFinishReason(choice.finish_reason), index: choice.index };
  });
  const usageMetadata = geminiUsageMetadata(completion.usage);
  return {
    candidates,
    ...(usageMetadata && { usageMetadata }),
    modelVersion: completion.model,
    responseId: geminiResponseId(completion.id),
  };
}
